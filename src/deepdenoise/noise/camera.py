"""Real camera noise: a simulator to measure against, and pixel-shuffle down-sampling (PD) to remove it.

Noise in a real photo is not white: the sensor's noise (shot + read, in linear light, one colour
per pixel behind a Bayer filter) is interpolated by demosaicing, which spreads each noisy sample
over its neighbours, then bent by the tone curve and often JPEG-compressed. A network trained on
white Gaussian noise sees those soft, blotchy grains as texture and leaves them in.

PD (Zhou et al., "When AWGN-based denoiser meets real noises", AAAI 2020) splits the image into
its s x s polyphase sub-images: neighbours two pixels apart are far less correlated than adjacent
ones, so each sub-image carries nearly white noise that a Gaussian denoiser removes. Denoising
the sub-images alone loses fine texture (each one is aliased), so the refinement puts each
phase's noisy pixels back into the PD result in turn, denoises those s^2 images at full
resolution and averages them: the flat areas keep PD's cleanliness and edges come from the
full-resolution passes. At s = 2 that is five image-equivalents of network passes instead of one,
each the usual tiled inference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from deepdenoise.noise.gaussian import make_generator

Progress = Callable[[int, int], None]
Denoise = Callable[[np.ndarray, "Progress | None"], np.ndarray]  # f(img [H, W(, C)] float32, progress) -> same shape


@dataclass(frozen=True)
class CameraNoise:
    """Heteroscedastic sensor noise in linear light: variance = shot * L + read^2 (L in [0, 1]),
    as in CBDNet (Guo et al. 2019), then bilinear demosaicing, the sRGB curve and optional JPEG."""

    shot: float = 0.04
    read: float = 0.01
    jpeg: int | None = None  # JPEG quality of the noisy photo, or None (kept in float)

    def label(self) -> str:
        j = f", JPEG {self.jpeg}" if self.jpeg else ""
        return f"shot {self.shot:g}, read {self.read:g}{j}"


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    lin = lin.clamp(0, 1)  # a sensor clips: no negative light, no value past saturation
    return torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def bayer_masks(h: int, w: int) -> torch.Tensor:
    """RGGB colour filter array: [3, H, W] of 0/1, one colour per pixel."""
    m = torch.zeros(3, h, w)
    m[0, 0::2, 0::2] = 1
    m[1, 0::2, 1::2] = 1
    m[1, 1::2, 0::2] = 1
    m[2, 1::2, 1::2] = 1
    return m


_K_RB = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 4
_K_G = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]) / 4


def demosaic_bilinear(raw: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] Bayer samples -> [B, 3, H, W]. Normalised convolution: each missing value is
    the mean of its nearest same-colour samples, measured ones are kept, borders need no padding rule."""
    b, _, h, w = raw.shape
    m = bayer_masks(h, w).to(raw)[None]  # [1, 3, H, W]
    k = torch.stack([_K_RB, _K_G, _K_RB])[:, None].to(raw)  # [3, 1, 3, 3]
    num = F.conv2d(raw * m, k, padding=1, groups=3)  # [B, 3, H, W]
    den = F.conv2d(m.expand(b, -1, -1, -1), k, padding=1, groups=3)  # [B, 3, H, W]
    return num / den


@dataclass(frozen=True)
class CameraISP:
    """A camera's processing after the sensor, per image [B]: white-balance gains for red and blue
    ``wb`` [B, 2], colour-matrix saturation ``sat`` [B] (M = (1 + s) I - s/3, rows summing to 1,
    so grey stays grey) and a tone exponent ``tone`` [B] on the sRGB curve. White balance and the
    colour matrix amplify the sensor noise unequally per channel, which is why blue is often the
    noisiest channel of a photo and why its noise is coloured (Brooks et al. 2019, CBDNet)."""

    wb: torch.Tensor
    sat: torch.Tensor
    tone: torch.Tensor

    @staticmethod
    def draw(g: torch.Generator, batch: int) -> CameraISP:
        wb = torch.stack([1.6 + torch.rand(batch, generator=g), 1.3 + 0.9 * torch.rand(batch, generator=g)], 1)
        return CameraISP(wb, 0.5 * torch.rand(batch, generator=g), 0.8 + 0.4 * torch.rand(batch, generator=g))

    def matrices(self) -> torch.Tensor:
        """The colour matrices [B, 3, 3]."""
        eye = torch.eye(3).expand(len(self.sat), 3, 3)
        s = self.sat.reshape(-1, 1, 1)
        return (1 + s) * eye - s / 3

    def gains(self) -> torch.Tensor:
        """White-balance gains [B, 3, 1, 1] (green 1)."""
        one = torch.ones(len(self.sat))
        return torch.stack([self.wb[:, 0], one, self.wb[:, 1]], 1).reshape(-1, 3, 1, 1)

    def shard(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> CameraISP:
        return CameraISP(fn(self.wb), fn(self.sat), fn(self.tone))


def _mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image colour matrix m [B, 3, 3] applied to x [B, 3, H, W]."""
    return torch.einsum("bij,bjhw->bihw", m.to(x), x)


def camera_pipeline(
    x: torch.Tensor, shot: torch.Tensor, read: torch.Tensor, z: torch.Tensor, isp: CameraISP | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy, reference) for clean sRGB x: [B, 3, H, W], per-image ``shot`` and ``read`` [B] and
    standard normal draws z: [B, 1, H, W] (one per Bayer sample). With ``isp`` the clean image is
    first taken back to the sensor (inverse colour matrix, inverse white balance), and the noisy
    mosaic is processed forward again (demosaic, white balance, colour matrix, tone)."""
    lin = srgb_to_linear(x.float())  # [B, 3, H, W]
    if isp is not None:
        lin = (_mix(torch.linalg.inv(isp.matrices()), lin) / isp.gains().to(lin)).clamp(0, 1)  # sensor RGB
    m = bayer_masks(x.shape[2], x.shape[3]).to(lin)[None]  # [1, 3, H, W]
    raw = (lin * m).sum(1, keepdim=True)  # [B, 1, H, W]
    std = (shot.reshape(-1, 1, 1, 1) * raw + read.reshape(-1, 1, 1, 1) ** 2).sqrt()  # [B, 1, H, W]

    def develop(mosaic: torch.Tensor) -> torch.Tensor:
        rgb = demosaic_bilinear(mosaic)  # [B, 3, H, W]
        if isp is None:
            return linear_to_srgb(rgb)
        rgb = _mix(isp.matrices(), rgb * isp.gains().to(rgb))
        return linear_to_srgb(rgb) ** isp.tone.reshape(-1, 1, 1, 1).to(rgb)

    return develop(raw + std * z), develop(raw)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of each image of x [B, C, H, W] with its own ``sigma`` [B] (pixels; 0 keeps it)."""
    b, c, h, w = x.shape
    r = max(1, int(3 * float(sigma.max()) + 0.999))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=x.device)  # [K]
    k = torch.exp(-0.5 * (t[None] / sigma.clamp_min(1e-3)[:, None].to(t)) ** 2)  # [B, K]
    k = k / k.sum(1, keepdim=True)
    k = k.repeat_interleave(c, 0)  # [B*C, K]
    y = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="reflect")  # [1, B*C, H+2r, W+2r]
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)  # [1, B*C, H+2r, W]
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)  # [1, B*C, H, W]
    return y.reshape(b, c, h, w)


def in_camera_nr(noise: torch.Tensor, chroma_sigma: torch.Tensor, luma_sigma: torch.Tensor) -> torch.Tensor:
    """The noise a camera's own noise reduction leaves, for noise [B, 3, H, W] in sRGB: its chroma
    (B - Y, R - Y) blurred by a Gaussian of ``chroma_sigma`` [B] pixels, its luma by ``luma_sigma``
    [B]. Cameras smooth chroma hard and luma lightly before JPEG, so the chroma noise of a photo is
    weak but blotchy (neighbour correlation about 0.9 in PolyU's Canon JPEGs against 0.6 after
    demosaicing alone) and its luma grain coarser than a pixel. Applied to the noise only: the
    camera's filter is edge-aware and keeps the scene's colour detail."""
    y = (0.299 * noise[:, 0] + 0.587 * noise[:, 1] + 0.114 * noise[:, 2])[:, None]  # [B, 1, H, W]
    chroma = torch.cat([noise[:, 2:3] - y, noise[:, 0:1] - y], 1)  # [B, 2, H, W]: Cb, Cr
    y = _blur(y, luma_sigma)
    cb, cr = _blur(chroma, chroma_sigma).unbind(1)  # [B, H, W] each
    r, b = y[:, 0] + cr, y[:, 0] + cb
    g = (y[:, 0] - 0.299 * r - 0.114 * b) / 0.587
    return torch.stack([r, g, b], 1)  # [B, 3, H, W]


def simulate_camera(
    x: torch.Tensor, model: CameraNoise, seed: int | torch.Generator | None = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy, reference) for a clean sRGB batch x: [B, 3, H, W] in [0, 1].

    The reference is the same pipeline without noise (mosaic, demosaic, tone curve), so the PSNR
    between them measures the denoising alone, not the demosaicing loss no denoiser is asked to undo.
    """
    g = make_generator(seed, x.device)
    b, _, h, w = x.shape
    z = torch.randn((b, 1, h, w), generator=g, device=x.device)  # [B, 1, H, W]
    full = torch.ones(b, device=x.device)  # [B]
    noisy, reference = camera_pipeline(x, model.shot * full, model.read * full, z)
    if model.jpeg:
        noisy = _jpeg(noisy, model.jpeg)
    return noisy, reference


def camera_training_batch(
    clean: torch.Tensor, g: torch.Generator, batch: int, shard: Callable[[torch.Tensor], torch.Tensor],
    shot_max: float, read_max: float, jpeg_prob: float = 0.0, isp: bool = False, profile: str = "basic",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(reference, noisy, sigma map [b, 3, P, P]) for a training batch of clean sRGB patches
    [b, 3, P, P]: shot and read noise per patch, a fraction ``jpeg_prob`` saved as JPEG and, with
    ``isp``, a random white balance, colour matrix and tone curve per patch. Every draw is made for
    the whole ``batch`` and then ``shard``-ed, so any world size sees the same data. The map is the
    noise's local standard deviation per channel (0-255), what a noise-map model is given for a
    photo whose noise level function was estimated.

    ``profile`` "basic": levels uniform in [0, max], JPEG quality 75-95. "incamera" is what a
    camera's own JPEG holds: levels log-uniform in [max/30, max] (most photos are mildly noisy),
    the camera's noise reduction (:func:`in_camera_nr`: chroma blurred 1-3 px, luma 0.3-0.8 px),
    JPEG quality 90-98 with the reference through the same 4:2:0 chroma subsampling (quality 100),
    so the target keeps what the camera's clean JPEG keeps and the map measures noise, not the
    colour detail no JPEG holds."""
    from deepdenoise.noise.gaussian import local_std

    if profile not in ("basic", "incamera"):
        raise ValueError(f"unknown camera profile {profile!r}")
    p, inc = clean.shape[-1], profile == "incamera"
    shot, read = _levels(g, batch, shot_max, read_max, inc)
    shot, read = shard(shot).to(clean.device), shard(read).to(clean.device)  # [b] each
    z = shard(torch.randn((batch, 1, p, p), generator=g)).to(clean.device)  # [b, 1, P, P]
    quality = shard((90 + torch.randint(0, 9, (batch,), generator=g)) if inc
                    else (75 + torch.randint(0, 21, (batch,), generator=g)))  # [b]
    use_jpeg = shard(torch.rand(batch, generator=g) < jpeg_prob)  # [b]
    proc = CameraISP.draw(g, batch).shard(shard) if isp else None
    noisy, reference = camera_pipeline(clean, shot, read, z, proc)  # [b, 3, P, P] each
    if inc:
        chroma = shard(1.0 + 2.0 * torch.rand(batch, generator=g)).to(clean.device)  # [b] pixels
        luma = shard(0.3 + 0.5 * torch.rand(batch, generator=g)).to(clean.device)  # [b] pixels
        noisy = reference + in_camera_nr(noisy - reference, chroma, luma)
    for i in torch.nonzero(use_jpeg).flatten().tolist():
        noisy[i] = _jpeg(noisy[i:i + 1].cpu(), int(quality[i]))[0].to(noisy.device)
        if inc:
            reference[i] = _jpeg(reference[i:i + 1].cpu(), 100)[0].to(noisy.device)
    return reference, noisy, local_std(noisy - reference)  # sigma map: [b, 3, P, P]


def _levels(g: torch.Generator, batch: int, shot_max: float, read_max: float,
            log: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Shot and read noise [B] each: uniform in [0, max], or log-uniform in [max/30, max]."""
    if not log:
        return torch.rand(batch, generator=g) * shot_max, torch.rand(batch, generator=g) * read_max
    span = torch.log(torch.tensor(30.0))
    shot = shot_max * torch.exp(-span * torch.rand(batch, generator=g))
    return shot, read_max * torch.exp(-span * torch.rand(batch, generator=g))


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Round-trip each image of [B, 3, H, W] through 8-bit JPEG at ``quality`` (4:2:0, as cameras do)."""
    import io

    from PIL import Image

    out = []
    for img in x:
        a = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)  # [H, W, 3]
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=quality)
        dec = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0  # [H, W, 3]
        out.append(torch.from_numpy(dec).permute(2, 0, 1))
    return torch.stack(out)
