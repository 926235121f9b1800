"""Augmentation of whole batches with per-sample random parameters.

torchvision's v2 transforms applied to a batched tensor draw ONE random
transform for the whole batch, which is not augmentation. These transforms draw
parameters for every sample from a seeded CPU ``torch.Generator`` (so a seed
gives the same augmentation on CPU and GPU) and apply them in one vectorized
call (``affine_grid``/``grid_sample``, masks), on whatever device the batch is.

Transforms work on float images in [0, 1], before normalization, so a fill
value of 0 is the black background of both data sets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mnistlab.errors import ConfigError, in_range, positive_int, positive_number


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def _pair(value: float | Sequence[float], symmetric: bool = True) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return (-float(value), float(value)) if symmetric else (float(value), float(value))
    low, high = value
    return float(low), float(high)


class BatchTransform:
    """One augmentation step: draw parameters per sample, then apply them to the batch."""

    #: True when the transform changes the label of a data set that is not mirror-symmetric
    #: (a flipped digit is not the same digit); such a transform is refused for it.
    needs_mirror_invariant_labels = False

    def sample(self, batch_size: int, height: int, width: int, generator: torch.Generator) -> dict:
        raise NotImplementedError

    def apply(self, images: torch.Tensor, params: dict) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = images.shape
        return self.apply(images, self.sample(b, h, w, generator))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class RandomAffine(BatchTransform):
    """Rotation, translation, scale and shear, each drawn per sample.

    ``degrees``/``shear`` in degrees (symmetric range or ``[low, high]``),
    ``translate`` as a fraction of the image size, ``scale`` as ``[low, high]``.
    """

    def __init__(
        self,
        degrees: float | Sequence[float] = 0.0,
        translate: float = 0.0,
        scale: Sequence[float] = (1.0, 1.0),
        shear: float | Sequence[float] = 0.0,
        p: float = 1.0,
    ) -> None:
        self.degrees = _pair(degrees)
        self.translate = float(translate)
        self.scale = _pair(scale, symmetric=False)
        self.shear = _pair(shear)
        self.p = float(p)

    def sample(self, batch_size: int, height: int, width: int, generator: torch.Generator) -> dict:
        n = batch_size
        return {
            "angle": _uniform(n, *self.degrees, generator),
            "tx": _uniform(n, -self.translate, self.translate, generator) * width,
            "ty": _uniform(n, -self.translate, self.translate, generator) * height,
            "scale": _uniform(n, *self.scale, generator),
            "shear": _uniform(n, *self.shear, generator),
            "apply": torch.rand(n, generator=generator) < self.p,
        }

    @staticmethod
    def theta(params: dict, height: int, width: int) -> torch.Tensor:
        """``affine_grid`` matrices (output -> input, normalized coordinates), shape (B, 2, 3)."""
        angle = torch.deg2rad(params["angle"])
        shear = torch.deg2rad(params["shear"])
        s = params["scale"]
        cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
        # Forward map in pixel offsets from the centre: A = s * R(angle) @ [[1, tan], [0, 1]].
        a11, a12 = s * cos, s * (cos * tan - sin)
        a21, a22 = s * sin, s * (sin * tan + cos)
        det = a11 * a22 - a12 * a21
        i11, i12, i21, i22 = a22 / det, -a12 / det, -a21 / det, a11 / det
        tx, ty = params["tx"], params["ty"]
        # Inverse in pixel space: p = A^-1 (p' - t); then conjugate with D = diag(W/2, H/2).
        ax, ay = width / 2.0, height / 2.0
        theta = torch.stack(
            [
                torch.stack([i11, i12 * ay / ax, -(i11 * tx + i12 * ty) / ax], dim=1),
                torch.stack([i21 * ax / ay, i22, -(i21 * tx + i22 * ty) / ay], dim=1),
            ],
            dim=1,
        )
        identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand_as(theta)
        return torch.where(params["apply"][:, None, None], theta, identity)

    def apply(self, images: torch.Tensor, params: dict) -> torch.Tensor:
        b, c, h, w = images.shape
        theta = self.theta(params, h, w).to(images.device, images.dtype)
        grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )


class ElasticDistortion(BatchTransform):
    """Elastic deformation of Simard et al. (2003): a smoothed random displacement field per sample.

    ``alpha`` scales the displacement (pixels), ``sigma`` is the Gaussian smoothing (pixels).
    """

    def __init__(self, alpha: float = 34.0, sigma: float = 4.0, p: float = 1.0) -> None:
        self.alpha = float(alpha)
        self.sigma = float(sigma)
        self.p = float(p)

    def sample(self, batch_size: int, height: int, width: int, generator: torch.Generator) -> dict:
        return {
            "field": torch.rand(batch_size, 2, height, width, generator=generator) * 2 - 1,
            "apply": torch.rand(batch_size, generator=generator) < self.p,
        }

    def apply(self, images: torch.Tensor, params: dict) -> torch.Tensor:
        b, c, h, w = images.shape
        field = params["field"].to(images.device, images.dtype)
        radius = max(1, int(3 * self.sigma))
        x = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
        kernel = torch.exp(-(x**2) / (2 * self.sigma**2))
        kernel = kernel / kernel.sum()
        field = F.conv2d(
            field.reshape(b * 2, 1, h, w), kernel.view(1, 1, 1, -1), padding=(0, radius)
        )
        field = F.conv2d(field, kernel.view(1, 1, -1, 1), padding=(radius, 0)).view(b, 2, h, w)
        field = field * self.alpha * params["apply"].to(images.device)[:, None, None, None]
        # Pixel displacement -> normalized grid offset.
        offset = torch.stack([field[:, 0] * 2 / w, field[:, 1] * 2 / h], dim=-1)
        identity = torch.eye(2, 3, device=images.device, dtype=images.dtype).expand(b, 2, 3)
        grid = F.affine_grid(identity, [b, c, h, w], align_corners=False) + offset
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )


class RandomErasing(BatchTransform):
    """Erase one rectangle per chosen sample (Zhong et al. 2017), like torchvision's RandomErasing.

    The rectangle's area is a ``scale`` fraction of the image, its aspect ratio is
    log-uniform in ``ratio``; it is clipped to the image rather than re-drawn.
    """

    def __init__(
        self,
        p: float = 0.5,
        scale: Sequence[float] = (0.02, 0.33),
        ratio: Sequence[float] = (0.3, 3.3),
        value: float = 0.0,
    ) -> None:
        self.p = float(p)
        self.scale = _pair(scale, symmetric=False)
        self.ratio = _pair(ratio, symmetric=False)
        self.value = float(value)

    def sample(self, batch_size: int, height: int, width: int, generator: torch.Generator) -> dict:
        n = batch_size
        area = _uniform(n, *self.scale, generator) * height * width
        log_ratio = _uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), generator)
        ratio = torch.exp(log_ratio)
        h = torch.sqrt(area * ratio).round().clamp(1, height).long()
        w = torch.sqrt(area / ratio).round().clamp(1, width).long()
        top = (torch.rand(n, generator=generator) * (height - h + 1)).floor().long()
        left = (torch.rand(n, generator=generator) * (width - w + 1)).floor().long()
        return {
            "top": top,
            "left": left,
            "h": h,
            "w": w,
            "apply": torch.rand(n, generator=generator) < self.p,
        }

    def apply(self, images: torch.Tensor, params: dict) -> torch.Tensor:
        _, _, height, width = images.shape
        p = {k: v.to(images.device) for k, v in params.items()}
        rows = torch.arange(height, device=images.device)[None, :, None]
        cols = torch.arange(width, device=images.device)[None, None, :]
        top, left = p["top"][:, None, None], p["left"][:, None, None]
        mask = (
            (rows >= top)
            & (rows < top + p["h"][:, None, None])
            & (cols >= left)
            & (cols < left + p["w"][:, None, None])
            & p["apply"][:, None, None]
        )
        return images.masked_fill(mask[:, None], self.value)


class RandomGaussianBlur(BatchTransform):
    """Gaussian blur with a sigma drawn per sample: a softer or thicker stroke, as from another pen or scan.

    Like torchvision's ``GaussianBlur(kernel_size, sigma=(low, high))``, but every image
    draws its own sigma (uniform in ``sigma``, pixels). The separable kernel spans +-3
    sigma of the largest sigma unless ``kernel_size`` (odd) is given; images that are not
    chosen (``p``) pass through unchanged. Zero padding: the background of both data sets.
    """

    def __init__(
        self,
        sigma: Sequence[float] = (0.1, 1.0),
        p: float = 0.5,
        kernel_size: int | None = None,
    ) -> None:
        low, high = _pair(sigma, symmetric=False)
        positive_number(low, "augmentation blur sigma[0]", " (pixels)")
        if high < low:
            raise ConfigError(
                f"augmentation blur sigma={[low, high]} must be [low, high] with low <= high"
            )
        self.sigma = (low, high)
        self.p = in_range(p, "augmentation blur p", 0.0, 1.0, high_inclusive=True)
        if kernel_size is None:
            kernel_size = 2 * math.ceil(3 * high) + 1
        if positive_int(kernel_size, "augmentation blur kernel_size") % 2 == 0:
            raise ConfigError(
                f"augmentation blur kernel_size={kernel_size} must be odd (a centred kernel), e.g. 7, "
                "or null for +-3 sigma"
            )
        self.kernel_size = kernel_size

    def sample(self, batch_size: int, height: int, width: int, generator: torch.Generator) -> dict:
        return {
            "sigma": _uniform(batch_size, *self.sigma, generator),
            "apply": torch.rand(batch_size, generator=generator) < self.p,
        }

    def kernels(self, params: dict) -> torch.Tensor:
        """One normalized 1-D kernel per sample, shape (B, kernel_size); a unit impulse if not chosen."""
        radius = self.kernel_size // 2
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        sigma = params["sigma"][:, None]
        kernel = torch.exp(-(x**2) / (2 * sigma**2))
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
        impulse = (x == 0).float().expand_as(kernel)
        return torch.where(params["apply"][:, None], kernel, impulse)

    def apply(self, images: torch.Tensor, params: dict) -> torch.Tensor:
        b, c, h, w = images.shape
        radius = self.kernel_size // 2
        # every (sample, channel) plane is its own group of a depthwise conv
        kernel = self.kernels(params).to(images.device, images.dtype).repeat_interleave(c, dim=0)
        planes = images.reshape(1, b * c, h, w)
        planes = F.conv2d(planes, kernel.view(b * c, 1, 1, -1), padding=(0, radius), groups=b * c)
        planes = F.conv2d(planes, kernel.view(b * c, 1, -1, 1), padding=(radius, 0), groups=b * c)
        return planes.view(b, c, h, w)


class RandomHorizontalFlip(BatchTransform):
    """Mirror each sample with probability ``p``; only for mirror-symmetric classes (not digits)."""

    needs_mirror_invariant_labels = True

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def sample(self, batch_size: int, height: int, width: int, generator: torch.Generator) -> dict:
        return {"apply": torch.rand(batch_size, generator=generator) < self.p}

    def apply(self, images: torch.Tensor, params: dict) -> torch.Tensor:
        flip = params["apply"].to(images.device)[:, None, None, None]
        return torch.where(flip, images.flip(-1), images)


class BatchAugmentation:
    """A sequence of batch transforms sharing one seeded generator."""

    def __init__(self, transforms: Sequence[BatchTransform] = ()) -> None:
        self.transforms = list(transforms)

    def __bool__(self) -> bool:
        return bool(self.transforms)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for transform in self.transforms:
            images = transform(images, generator)
        return images

    def __repr__(self) -> str:
        return f"BatchAugmentation({self.transforms})"
