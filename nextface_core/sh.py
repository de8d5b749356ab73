"""Real spherical harmonics (1 to 9 bands), irradiance, and SH ↔ environment-map conversion.

The one SH basis of NextFace, shared by every renderer. Light is expressed in camera space
(OpenCV: x right, y down, z forward). The SH polar axis is "up" (camera −y); with
``(X, Y, Z) = (x, z, −y)`` the basis is the standard orthonormal real SH
(no Condon–Shortley phase), coefficient ``l * (l + 1) + m`` for band ``l``, order ``m``.
``bands`` B gives B² coefficients per colour channel; light tensors are ``[batch, B², 3]``.

Environment maps are equirectangular ``[H, 2H, 3]``: row 0 looks up (camera −y), the
middle row is the horizon, column ``j`` has azimuth ``φ = 2π (j + ½) / W`` measured from
camera +x towards camera +z (so column W/4 looks away from the camera, forward, and the
centre column looks towards camera −x).
"""

from __future__ import annotations

import math

import torch

MAX_BANDS = 9
#: the SH frame's X, Y, Z axes (rows) in camera coordinates: X = camera x, Y = camera z, Z = camera −y (up)
SH_AXES_IN_CAMERA = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0))


def _check_bands(bands: int) -> None:
    if not 1 <= bands <= MAX_BANDS:
        raise ValueError(f"SH bands must be between 1 and {MAX_BANDS}, got {bands}")


def _bands_of(sh: torch.Tensor) -> int:
    """Bands of a light tensor ``[B, bands², 3]``; ValueError for any other shape."""
    bands = math.isqrt(sh.shape[1]) if sh.ndim == 3 else 0
    if sh.ndim != 3 or sh.shape[2] != 3 or bands * bands != sh.shape[1]:
        raise ValueError(f"SH light has shape {tuple(sh.shape)}; expected [B, bands², 3] (bands² = 1, 4, 9, ..., 81)")
    _check_bands(bands)
    return bands


def sh_basis(directions: torch.Tensor, bands: int) -> torch.Tensor:
    """The real SH basis at unit directions, in polynomial (Cartesian) forms, so it is smooth
    everywhere, poles included.

    Args:
        directions: ``[..., 3]`` float unit vectors, camera space.
        bands: 1..9.

    Returns:
        ``[..., bands²]`` basis values, same dtype and device; differentiable.
    """
    _check_bands(bands)
    x, y, z = directions.unbind(-1)
    cx, cy, cz = x, z, -y  # SH frame: polar axis = camera up
    out = [None] * (bands * bands)
    # (cx + i cy)^m = sin^m(θ) e^{imφ}: real and imaginary parts per m
    re = [torch.ones_like(cz)]
    im = [torch.zeros_like(cz)]
    for m in range(1, bands):
        re.append(re[-1] * cx - im[-1] * cy)
        im.append(re[-2] * cy + im[-1] * cx)
    for m in range(bands):
        # Q_l^m(t) = P_l^m(t) / sin^m θ, by the standard three-term recurrence in l
        q_mm = torch.full_like(cz, float(math.prod(range(1, 2 * m, 2))) if m > 0 else 1.0)
        q_prev, q = None, q_mm
        for l in range(m, bands):
            if l == m + 1:
                q_prev, q = q, cz * (2 * m + 1) * q_mm
            elif l > m + 1:
                q_prev, q = q, ((2 * l - 1) * cz * q - (l + m - 1) * q_prev) / (l - m)
            k = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))
            if m == 0:
                out[l * (l + 1)] = k * q
            else:
                out[l * (l + 1) + m] = math.sqrt(2.0) * k * q * re[m]
                out[l * (l + 1) - m] = math.sqrt(2.0) * k * q * im[m]
    return torch.stack(out, dim=-1)


def lambert_kernel(bands: int) -> list[float]:
    """Per-band coefficients Â_l of the clamped-cosine kernel (Ramamoorthi & Hanrahan 2001).

    Args:
        bands: 1..9.

    Returns:
        A list of ``[bands]`` Python floats, Â_0 = π first.
    """
    _check_bands(bands)
    kernel = []
    for l in range(bands):
        if l == 0:
            kernel.append(math.pi)
        elif l == 1:
            kernel.append(2.0 * math.pi / 3.0)
        elif l % 2 == 1:
            kernel.append(0.0)
        else:
            kernel.append(
                2.0 * math.pi * (-1) ** (l // 2 - 1) / ((l + 2) * (l - 1))
                * math.factorial(l) / (2**l * math.factorial(l // 2) ** 2)
            )
    return kernel


def irradiance(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Irradiance ``E(n) = ∫ L(ω) max(0, n·ω) dω``; a Lambertian surface of albedo ρ reflects ``ρ E / π``.

    Args:
        normals: ``[B,...,3]`` float unit normals, camera space.
        sh: ``[B,bands²,3]`` light coefficients (linear RGB).

    Returns:
        ``[B,...,3]`` irradiance; differentiable w.r.t. both inputs.
    """
    bands = _bands_of(sh)
    kernel = sh.new_tensor([lambert_kernel(bands)[l] for l in range(bands) for _ in range(2 * l + 1)])
    basis = sh_basis(normals, bands)  # [B,...,K]
    weighted = sh * kernel[None, :, None]  # [B,K,3]
    flat = basis.reshape(basis.shape[0], -1, basis.shape[-1])
    return torch.bmm(flat, weighted).reshape(*normals.shape[:-1], 3)


def radiance(directions: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Incoming radiance ``L(ω)`` of the SH light.

    Args:
        directions: ``[B,...,3]`` float unit directions, camera space.
        sh: ``[B,bands²,3]`` light coefficients.

    Returns:
        ``[B,...,3]`` linear RGB radiance (may be < 0 between lobes).
    """
    bands = _bands_of(sh)
    basis = sh_basis(directions, bands)
    flat = basis.reshape(basis.shape[0], -1, basis.shape[-1])
    return torch.bmm(flat, sh).reshape(*directions.shape[:-1], 3)


def envmap_directions(height: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unit camera-space direction of each texel centre of an equirectangular map.

    Args:
        height: rows H (the width is 2H).
        device, dtype: of the result.

    Returns:
        ``[H,2H,3]`` unit directions.
    """
    width = 2 * height
    theta = (torch.arange(height, device=device, dtype=dtype) + 0.5) * math.pi / height
    phi = (torch.arange(width, device=device, dtype=dtype) + 0.5) * 2.0 * math.pi / width
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    cx, cy, cz = torch.sin(t) * torch.cos(p), torch.sin(t) * torch.sin(p), torch.cos(t)
    return torch.stack([cx, -cz, cy], dim=-1)  # back to camera (x, y, z)


def envmap_solid_angles(height: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Solid angle of each texel of an equirectangular map (they sum to 4π).

    Args:
        height: rows H (the width is 2H).
        device, dtype: of the result.

    Returns:
        ``[H,2H]`` steradians.
    """
    width = 2 * height
    edges = torch.arange(height + 1, device=device, dtype=torch.float64) * math.pi / height
    band = (torch.cos(edges[:-1]) - torch.cos(edges[1:])) * (2.0 * math.pi / width)
    return band[:, None].expand(height, width).to(dtype)


def sh_to_envmap(sh: torch.Tensor, height: int) -> torch.Tensor:
    """Radiance environment map of the SH light.

    Args:
        sh: ``[B,bands²,3]`` light coefficients.
        height: rows H of the map.

    Returns:
        ``[B,H,2H,3]`` linear RGB (may be < 0), the dtype and device of ``sh``.
    """
    dirs = envmap_directions(height, sh.device, sh.dtype)
    return radiance(dirs.expand(sh.shape[0], *dirs.shape), sh)


def envmap_to_sh(envmap: torch.Tensor, bands: int) -> torch.Tensor:
    """Project an equirectangular environment map onto the SH basis (inverse of :func:`sh_to_envmap`
    up to the band limit).

    Args:
        envmap: ``[B,H,2H,C]`` float, linear.
        bands: 1..9.

    Returns:
        ``[B,bands²,C]`` coefficients.
    """
    if envmap.ndim != 4 or envmap.shape[2] != 2 * envmap.shape[1]:
        raise ValueError(f"env map has shape {tuple(envmap.shape)}; expected equirectangular [B, H, 2H, C]")
    height = envmap.shape[1]
    dirs = envmap_directions(height, envmap.device, envmap.dtype)
    weights = envmap_solid_angles(height, envmap.device, envmap.dtype)
    basis = sh_basis(dirs, bands) * weights[..., None]  # [H,W,K]
    return torch.einsum("hwk,bhwc->bkc", basis, envmap)


def dominant_direction(sh: torch.Tensor) -> torch.Tensor:
    """Unit camera-space direction the light mostly comes from: the band-1 terms,
    luminance-weighted over colours. Needs bands ≥ 2.

    Args:
        sh: ``[B,bands²,3]`` light coefficients.

    Returns:
        ``[B,3]`` unit vectors.
    """
    if sh.shape[1] < 4:
        raise ValueError("the light direction needs at least 2 SH bands")
    c = (sh[:, 1:4] * sh.new_tensor([0.2126, 0.7152, 0.0722])).sum(-1)  # [B,3]: Y1-1 ∝ z, Y10 ∝ −y, Y11 ∝ x
    direction = torch.stack([c[:, 2], -c[:, 1], c[:, 0]], dim=-1)
    return torch.nn.functional.normalize(direction, dim=-1)


def sphere_directions(count: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """Directions spread evenly over the sphere (a Fibonacci lattice): quadrature points for
    integrals over all directions (the shadows' visibility, the light's negative part).

    Args:
        count: how many, ≥ 1.
        dtype: of the result.
        device: of the result.

    Returns:
        ``[count,3]`` unit vectors, the same for the same count.
    """
    i = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * i / count
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    r = (1.0 - z * z).clamp_min(0.0).sqrt()
    return torch.stack([r * phi.cos(), r * phi.sin(), z], -1).to(dtype=dtype, device=device)
