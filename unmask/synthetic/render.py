"""The painter of the teaching world: batched, seeded, soft-edged procedural faces in pure torch.

:class:`unmask.synthetic.world.FaceWorld` draws the factors and calls :class:`Painter` to paint them.

Every pixel of every image is computed at once on a ``(B, H, W)`` grid. The inverse pose maps the
pixel grid to canonical face coordinates ``(u, v)``; each part of the face is a signed distance (or
a smooth density) in those coordinates, turned into coverage by a one-pixel linear ramp (analytic
anti-aliasing) and composited back to front. Skin is shaded with a Lambert + Blinn model on normals
of a head ellipsoid perturbed by analytic bumps (nose ridge, nose tip, alae, cheekbones, chin, eye
sockets), times ambient occlusion. Landmarks come from the same geometry (``geometry.py``), so they
are exact by construction.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from unmask.synthetic import geometry
from unmask.synthetic import params as P

N_TEXTURES = 16
BLOCK = 8  # compression block size in pixels


def _fill(d: torch.Tensor, w: torch.Tensor | float) -> torch.Tensor:
    """Coverage of a shape with signed distance ``d`` (negative inside), a linear ramp ``w`` wide."""
    return (0.5 - d / w).clamp_(0.0, 1.0)


def _gauss(dx: torch.Tensor, dy: torch.Tensor, sx, sy) -> torch.Tensor:
    return torch.exp(-((dx / sx).square() + (dy / sy).square()))


def _hsv(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """HSV ``(B,)`` each in [0, 1] -> RGB ``(B, 3)``."""
    k = torch.tensor([5.0, 3.0, 1.0], device=h.device)
    t = (k[None] + h[:, None] * 6.0) % 6.0
    return v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(t, 4.0 - t), 0.0, 1.0)


def _lerp(img: torch.Tensor, colour: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Composite ``colour`` ((B, 3) or (B, 3, H, W)) over ``img`` (B, 3, H, W) with alpha (B, H, W)."""
    if colour.dim() == 2:
        colour = colour[:, :, None, None]
    return torch.lerp(img, colour.to(img.dtype).expand_as(img), alpha[:, None].to(img.dtype))


def texture_bank(seed: int, size: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Seeded texture banks at ``size``: smooth noise ``(N_TEXTURES, size, size)`` (skin, backgrounds) and
    pixel noise ``(N_TEXTURES, 3, size, size)``."""
    gen = torch.Generator().manual_seed(seed * 7919 + size)
    smooth = torch.zeros(N_TEXTURES, 1, size, size)
    for cells, weight in ((4, 0.6), (8, 0.3), (16, 0.1)):
        coarse = torch.randn(N_TEXTURES, 1, cells, cells, generator=gen)
        smooth += weight * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    smooth = (smooth - smooth.mean()) / smooth.std()
    fine = torch.randn(N_TEXTURES, 3, size, size, generator=gen)
    return {"smooth": smooth[:, 0].to(device), "fine": fine.to(device)}


class Painter:
    """One batch of faces being painted. Holds the coordinate fields; each method adds a layer."""

    def __init__(self, p: dict[str, torch.Tensor], g: dict[str, torch.Tensor], size: int,
                 bank: dict[str, torch.Tensor], bounds: tuple[float, float, float], *, edge: float = 1.0,
                 straight_through: bool = True) -> None:
        self.p, self.g, self.size, self.bank = p, g, size, bank
        self.bounds = bounds  # largest roll (rad), scale jitter, translation of the preset
        self.row0 = 0  # first image row of this painter's fields (windows paint a band of rows)
        self.edge = float(edge)  # width of every coverage ramp, in multiples of the exact one
        # Backward of the world's quantisers (texture shifts, level banding): straight-through where True,
        # their true derivative (zero) where False. The forward pass is exact either way.
        self.straight_through = straight_through
        dev = p["yaw"].device
        self.b = p["yaw"].shape[0]
        # Per-sample scalars broadcastable against (B, H, W).
        self.q = {k: v[:, None, None] for k, v in {**p, **g}.items()}
        q = self.q
        grid = (torch.arange(size, device=dev, dtype=p["yaw"].dtype) + 0.5) / size
        self.X, self.Y = grid[None, None, :], grid[None, :, None]
        cx, cy = self.X - 0.5 - q["tx"], self.Y - 0.5 - q["ty"]
        c, s = torch.cos(q["roll"]), torch.sin(q["roll"])
        self.u = 0.5 + (c * cx + s * cy) / q["scale"]
        self.v = 0.5 + (-s * cx + c * cy) / q["scale"]
        self.px = 1.0 / (size * q["scale"])  # one pixel in canonical units
        self.xf = self.u - (0.5 + q["shift_f"])  # inner-face x from the (yawed) midline
        self.xm = self.xf.abs()  # mirrored: both eyes, brows, cheeks in one pass
        self.sgn = torch.sign(self.xf)
        self.skin = self._skin_colour()
        self.hair = torch.from_numpy(P.HAIR_COLOURS).to(dev)[p["hair_col"].long()] * p["hair_shade"][:, None]
        self.hair = self.hair.clamp(0.0, 1.0)
        az, el = p["light_az"], p["light_el"]
        light = torch.stack([torch.cos(el) * torch.sin(az), -torch.sin(el), torch.cos(el) * torch.cos(az)], 1)
        self.light = light / light.norm(dim=1, keepdim=True)
        half = self.light + torch.tensor([0.0, 0.0, 1.0], device=dev)
        self.half = half / half.norm(dim=1, keepdim=True)

    # ------------------------------------------------------------- utilities
    def _fill(self, d: torch.Tensor, w: torch.Tensor | float) -> torch.Tensor:
        """Coverage of a shape with signed distance ``d``: a ramp ``w`` wide, times ``edge`` (exact at 1)."""
        return _fill(d, w if self.edge == 1.0 else w * self.edge)

    def _straight_through(self, *factors: torch.Tensor) -> bool:
        """Whether a quantiser of these factors needs its straight-through backward in this pass."""
        return self.straight_through and torch.is_grad_enabled() and any(f.requires_grad for f in factors)

    def _skin_colour(self) -> torch.Tensor:
        p = self.p
        pal = torch.from_numpy(P.SKIN_PALETTE).to(p["skin_tone"].device)
        t = p["skin_tone"] * (len(pal) - 1)
        i0 = t.floor().long().clamp(0, len(pal) - 2)
        frac = (t - i0)[:, None]
        skin = pal[i0] * (1 - frac) + pal[i0 + 1] * frac
        warm = torch.stack([0.03 * p["skin_warm"], 0.0 * p["skin_warm"], -0.04 * p["skin_warm"]], 1)
        return (skin + warm).clamp(0.0, 1.0)

    def _tex(self, bank: str, idx_key: str, sx_key: str, sy_key: str, salt: int = 0) -> torch.Tensor:
        """Sample a texture bank per image with an integer shift (exactly reproducible, batch-free)."""
        tex = self.bank[bank]
        n, size = tex.shape[0], self.size
        idx = ((self.p[idx_key] * n).long() + salt) % n
        sy = (self.p[sy_key] * size).long()
        sx = (self.p[sx_key] * size).long()
        ar = torch.arange(size, device=tex.device)
        rows = torch.arange(self.row0, self.row0 + self.v.shape[1], device=tex.device)
        yy = (rows[None, :, None] + sy[:, None, None]) % size
        xx = (ar[None, None, :] + sx[:, None, None]) % size
        if tex.dim() == 3:
            sample = lambda y, x: tex[idx[:, None, None], y, x]  # noqa: E731
        else:
            ch = torch.arange(tex.shape[1], device=tex.device)
            sample = lambda y, x: tex[idx[:, None, None, None], ch[None, :, None, None], y[:, None], x[:, None]]  # noqa: E731
        out = sample(yy, xx)
        if self._straight_through(self.p[sx_key], self.p[sy_key]):
            # Straight-through shift: forward the integer shift, backward the texture's slope times the
            # continuous shift's change (central differences of the periodic bank).
            slope_x = 0.5 * (sample(yy, (xx + 1) % size) - sample(yy, (xx - 1) % size))
            slope_y = 0.5 * (sample((yy + 1) % size, xx) - sample((yy - 1) % size, xx))
            moves = []
            for key, slope in ((sx_key, slope_x), (sy_key, slope_y)):
                shift = self.p[key] * size
                delta = (shift - shift.detach()).reshape(-1, *([1] * (out.dim() - 1)))
                moves.append(delta * slope)
            out = out + (moves[0] + moves[1])
        return out

    # ----------------------------------------------------------------- paint
    def paint(self) -> torch.Tensor:
        img = self.background()
        hair_d = self.hair_fields()
        img = self.back_hair(img, hair_d)
        img = self.clothes_and_neck(img)
        img = self.ears(img)
        img = self.face(img)
        img = self.front_hair(img, hair_d)
        img = self._subset(img, self.p["hat"] > 0.5, self.hat)
        img = self._subset(img, self.p["glasses"] > 0.5, self.glasses)
        img = self.camera(img)
        img = self.degrade(img)
        return (img * 2.0 - 1.0).clamp_(-1.0, 1.0)

    def _subset(self, img: torch.Tensor, which: torch.Tensor, layer) -> torch.Tensor:
        """Apply ``layer`` only to the images where ``which``: accessories cost nothing when absent."""
        idx = which.nonzero().flatten()
        if idx.numel() == 0:
            return img
        if idx.numel() == self.b:
            return layer(img, self)
        sub = Painter.__new__(Painter)
        sub.__dict__.update(self.__dict__)
        sub.q = {k: v[idx] for k, v in self.q.items()}
        sub.p = {k: v[idx] for k, v in self.p.items()}
        for name in ("u", "v", "xf", "xm", "sgn", "px", "skin", "hair", "light", "half", "face_d"):
            setattr(sub, name, getattr(self, name)[idx])
        sub.b = idx.numel()
        out = img.clone()
        out[idx] = layer(img[idx], sub)
        return out

    _ROW_FIELDS = ("u", "v", "xf", "xm", "sgn", "Y", "face_d")

    def _window(self, v_lo: float, v_hi: float) -> tuple[Painter, int, int]:
        """A painter restricted to the image rows that canonical rows ``[v_lo, v_hi]`` can reach.

        The band is bounded by the preset's largest pose, not by this batch, so an image renders the
        same whatever else is in its batch; features drawn inside it have no support outside.
        """
        roll, jitter, shift = self.bounds
        sin_r, cos_r = math.sin(roll), math.cos(roll)
        scales = [sc * c for sc in (1.0 - jitter, 1.0 + jitter) for c in (cos_r, 1.0)]
        reach = (1.0 + jitter) * sin_r * 0.32  # the face spans about 0.3 either side of the midline
        lo = 0.5 - shift - reach + min(sc * (v_lo - 0.5) for sc in scales)
        hi = 0.5 + shift + reach + max(sc * (v_hi - 0.5) for sc in scales)
        r0 = max(0, math.floor(lo * self.size) - 2)
        r1 = min(self.size, math.ceil(hi * self.size) + 2)
        sub = Painter.__new__(Painter)
        sub.__dict__.update(self.__dict__)
        for name in self._ROW_FIELDS:
            if name in self.__dict__:
                setattr(sub, name, getattr(self, name)[:, r0:r1])
        sub.row0 = self.row0 + r0
        return sub, r0, r1

    def _in_window(self, field: torch.Tensor, v_lo: float, v_hi: float, layer) -> torch.Tensor:
        """Apply ``layer(field_band, painter_band)`` to a row band of ``field`` ((B, 3, H, W))."""
        sub, r0, r1 = self._window(v_lo, v_hi)
        out = field.clone()
        out[:, :, r0:r1] = layer(field[:, :, r0:r1], sub)
        return out

    def background(self) -> torch.Tensor:
        p, q = self.p, self.q
        c1 = _hsv((p["cam_bg_h1"] + 0.04 * (p["bg_a"] - 0.5)) % 1.0, p["cam_bg_s1"],
                  p["cam_bg_v1"] * (0.85 + 0.3 * p["bg_b"]))
        c2 = _hsv(p["cam_bg_h2"], p["cam_bg_s2"], p["cam_bg_v2"] * (0.85 + 0.3 * p["bg_c"]))
        fam = q["cam_bg_family"]
        ang = q["cam_grad_angle"] + 0.8 * (q["bg_b"] - 0.5)
        t = (self.X - 0.5) * torch.cos(ang) + (self.Y - 0.5) * torch.sin(ang) + 0.5  # linear gradient
        radial = ((self.X - 0.5).square() + (self.Y - 0.45).square()) * 2.5
        stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * (self.X * (2.0 + 4.0 * q["bg_c"]) + q["bg_a"]))
        floor = torch.sigmoid((self.Y - (0.55 + 0.3 * q["bg_c"])) * 60.0)
        smooth = self._tex("smooth", "bg_a", "bg_b", "bg_c", salt=5) * 0.25 + 0.5
        t = torch.where(fam == 1, radial, t)
        t = torch.where(fam == 2, 0.25 * t + 0.75 * stripes, t)
        t = torch.where(fam == 3, 0.3 * t + 0.7 * floor, t)
        t = torch.where(fam == 4, 0.3 * t + 0.7 * smooth, t)
        t = torch.where(fam == 5, 0.5 * radial + 0.5 * smooth, t)
        img = torch.lerp(c1[:, :, None, None].expand(-1, -1, self.size, self.size),
                         c2[:, :, None, None].expand(-1, -1, self.size, self.size), t.clamp(0, 1)[:, None])
        return img.contiguous()

    # ------------------------------------------------------------------ hair
    def hair_fields(self) -> dict[str, torch.Tensor]:
        q, u, v = self.q, self.u, self.v
        hx = u - (0.5 + q["shift_o"])
        y0h = q["y0"] - 0.02
        ra = q["head_w"] + q["hair_vol"]
        rb = y0h - (q["top_y"] - 1.2 * q["hair_vol"])
        hy = v - y0h
        r = torch.sqrt((hx / ra).square() + (hy / rb).square())
        # Strands radiate from the crown; the angle makes both texture and wavy edges.
        theta = torch.atan2(hx - q["part"], v - (q["top_y"] + 0.03))
        wave = 0.003 * torch.sin(theta * 23.0 + q["tex_id"])
        d_cap = (r - 1.0) * torch.minimum(ra, rb) + wave
        return {"hx": hx, "hy": hy, "r": r, "theta": theta, "d_cap": d_cap}

    def _hair_colour(self, h: dict[str, torch.Tensor], darker: float) -> torch.Tensor:
        """Shaded hair colour ``(B, 3, H, W)``; computed once per painter, darkened for the back layer."""
        if "colour" not in h:
            h["colour"] = self._hair_shaded(h)
        return h["colour"] if darker == 1.0 else h["colour"] * darker

    def _hair_shaded(self, h: dict[str, torch.Tensor]) -> torch.Tensor:
        q = self.q
        n1, n2 = 0.22 * self.size, 0.5 * self.size
        th = h["theta"]
        strands = 0.55 + 0.25 * torch.sin(th * n1 + q["tex_id"]) + 0.2 * torch.sin(th * n2 + 2.1 * q["tex_id"])
        # Fake normal of the hair volume for light, plus an anisotropic sheen band.
        nx = (h["hx"] / (q["head_w"] + q["hair_vol"])).clamp(-1, 1)
        ny = (h["hy"] / 0.35).clamp(-1, 1)
        nz = (1.0 - nx.square() - ny.square()).clamp_min(0.05).sqrt()
        lx, ly, lz = (self.light[:, i, None, None] for i in range(3))
        lam = (nx * lx + ny * ly + nz * lz).clamp_min(0.0)
        shade = (q["ambient"] + q["light_str"] * lam) * (0.75 + 0.25 * strands)
        sheen = 0.25 * torch.exp(-((h["r"] - 0.8) / 0.08).square()) * strands * q["light_str"]
        return self.hair[:, :, None, None] * shade[:, None] + (sheen * 0.6)[:, None] * (
            0.4 + self.hair[:, :, None, None])

    def back_hair(self, img: torch.Tensor, h: dict[str, torch.Tensor]) -> torch.Tensor:
        q, v = self.q, self.v
        style = q["hair_style"]
        length = torch.from_numpy(P.HAIR_LENGTH).to(v.device)[self.p["hair_style"].long()][:, None, None]
        y0h = q["y0"] - 0.02
        wb = q["head_w"] + q["hair_vol"] + 0.012 + 0.06 * (v - y0h).clamp_min(0.0)
        d_back = torch.maximum(h["hx"].abs() - wb, v - length + 0.01 * torch.sin(h["hx"] * 80.0))
        d_back = torch.maximum(d_back, y0h - v)
        d = torch.where(length > 0, torch.minimum(h["d_cap"], d_back), h["d_cap"])
        alpha = self._fill(d, 1.5 * self.px) * (style != P.HAIR_BALD).float()
        return _lerp(img, self._hair_colour(h, 0.7), alpha)

    def front_hair(self, img: torch.Tensor, h: dict[str, torch.Tensor]) -> torch.Tensor:
        q, v = self.q, self.v
        bald = (q["hair_style"] == P.HAIR_BALD).float()
        hairline = q["hairline"] * (1 - bald) + (q["top_y"] - 0.12) * bald
        ax = h["hx"].abs() / q["head_w"]
        temple = ((ax - 0.55) / 0.4).clamp(0.0, 1.0)
        temple = temple * temple * (3 - 2 * temple)
        y_hl = hairline + (q["eye_y"] - 0.03 - hairline) * temple + 0.004 * torch.sin(h["theta"] * 31.0)
        d = torch.maximum(h["d_cap"], v - y_hl)
        # Bald heads keep only a horseshoe of hair at the sides and back.
        bang_y = q["brow_cy"] - 0.014 + 0.006 * torch.sin(self.xf * 110.0 + q["tex_id"])
        d_bangs = torch.maximum(torch.maximum(h["d_cap"], v - bang_y), h["hx"].abs() - 0.92 * q["head_w"])
        d = torch.where(q["bangs"] > 0.5, torch.minimum(d, d_bangs), d)
        fade = ((v - (q["eye_y"] - 0.15)) / 0.05).clamp(0.0, 1.0)
        alpha = self._fill(d, 1.5 * self.px) * (1.0 - bald * (1.0 - 0.7 * fade))
        # Hair casts a soft shadow on the forehead just below it.
        shadow = self._fill(d - 0.012, 0.02) * 0.3
        img = img * (1.0 - shadow[:, None])
        return _lerp(img, self._hair_colour(h, 1.0), alpha)

    # ------------------------------------------------------------ body parts
    def clothes_and_neck(self, img: torch.Tensor) -> torch.Tensor:
        p, q, u, v = self.p, self.q, self.u, self.v
        x = u - (0.5 + 0.5 * q["shift_o"])
        d_cl = (torch.sqrt((x / 0.52).square() + ((v - 1.22) / 0.36).square()) - 1.0) * 0.36
        cloth = _hsv(p["cloth_h"], 0.7 * p["cloth_s"], 0.12 + 0.7 * p["cloth_v"])
        folds = 0.85 + 0.15 * torch.cos(x * 9.0 + 3.0 * q["cloth_h"])
        lam = (0.6 + 0.4 * (x * 2.0 * self.light[:, 0, None, None]).clamp(-1, 1)) * folds
        img = _lerp(img, cloth[:, :, None, None] * lam[:, None], self._fill(d_cl, 1.5 * self.px))
        nw = q["neck_w"] + 0.25 * (v - q["chin"]).clamp_min(0.0).square()
        neckline = 0.95 + 1.8 * x.square()
        d_neck = torch.maximum(torch.maximum(x.abs() - nw, q["y0"] + 0.1 - v), v - neckline)
        shade = (0.5 + 0.4 * ((v - q["chin"]) / 0.09).clamp(0.0, 1.0)) * (1.0 - 0.35 * (x / nw).square())
        shade = shade * (q["ambient"] + 0.6 * q["light_str"])
        return _lerp(img, self.skin[:, :, None, None] * shade[:, None], self._fill(d_neck, 1.5 * self.px))

    def ears(self, img: torch.Tensor) -> torch.Tensor:
        q, v = self.q, self.v
        ex = (self.u - (0.5 + q["shift_o"])).abs() - (q["head_w"] - 0.006)
        ey = v - (q["eye_y"] + 0.04)
        a, b = 0.024 * q["ear_size"], 0.052 * q["ear_size"]
        r = torch.sqrt((ex / a).square() + (ey / b).square())
        inner = torch.exp(-((r / 0.55).square()))
        shade = (q["ambient"] + 0.5 * q["light_str"]) * (0.85 - 0.35 * inner)
        return _lerp(img, self.skin[:, :, None, None] * shade[:, None], self._fill((r - 1.0) * a, 1.5 * self.px))

    def _face_outline(self) -> torch.Tensor:
        p, g, q, v = self.p, self.g, self.q, self.v

        def half_width(vv: torch.Tensor) -> torch.Tensor:
            s = (vv - q["y0"]) / q["jaw_len"]
            lower = geometry.outline_half_width(s, p, g)
            t = ((q["y0"] - vv) / (q["y0"] - q["top_y"])).clamp(0.0, 1.0)
            upper = q["head_w"] * (1.0 - t.square()).clamp_min(0.0).sqrt()
            return torch.where(vv < q["y0"], upper, lower)

        s = ((v - q["y0"]) / q["jaw_len"]).clamp(0.0, 1.0)
        xo = self.u - 0.5 - geometry.outline_shift(s, g)
        w = half_width(v)
        slope = (half_width(v + 0.004) - w) / 0.004
        d = (xo.abs() - w) * torch.rsqrt(1.0 + slope.square())
        return torch.maximum(d, torch.maximum(v - q["chin"], q["top_y"] - v))

    def face(self, img: torch.Tensor) -> torch.Tensor:
        q, v, xm, px = self.q, self.v, self.xm, self.px
        self.face_d = d_face = self._face_outline()
        soft = torch.clamp(px, min=0.0025)
        # Albedo: skin, mottling, cheek blush.
        mottle = self._tex("smooth", "tex_i", "tex_sx", "tex_sy")
        alb = self.skin[:, :, None, None] * (1.0 + 0.035 * mottle)[:, None]
        blush = _gauss(xm - (q["eye_dx"] + 0.01), v - (q["eye_y"] + 0.1 - 0.01 * q["smile"]), 0.045, 0.035)
        blush_col = self.skin * torch.tensor([1.0, 0.78, 0.78], device=v.device)
        alb = _lerp(alb, blush_col, blush * (0.15 + 0.3 * q["blush"]))
        alb = self._subset_field(alb, self.p["beard"] > 0, self._beard)
        alb = self._in_window(alb, 0.30, 0.48, lambda a, pt: pt._brows(a, soft))
        alb = self._in_window(alb, 0.60, 0.83, lambda a, pt: pt._mouth(a, soft))
        alb = self._in_window(alb, 0.39, 0.54, lambda a, pt: pt._eyes(a, soft))
        alb = self._in_window(alb, 0.56, 0.70, lambda a, pt: pt._nostrils(a, soft))
        shade, spec = self._shading(d_face)
        colour = alb * shade[:, None] + spec[:, None]
        colour = self._in_window(colour, 0.40, 0.53, lambda c, pt: pt._catchlights(c))
        return _lerp(img, colour, self._fill(d_face, 1.5 * px))

    def _subset_field(self, alb, which, fn):
        return self._subset(alb, which, lambda a, painter: fn(a, painter))

    @staticmethod
    def _beard(alb: torch.Tensor, pt: Painter) -> torch.Tensor:
        q, v, xf = pt.q, pt.v, pt.xf
        kind = q["beard"]
        mw = q["mouth_w"]
        y_top = q["nostril_y"] + 0.012 - 0.16 * (pt.xm / q["head_w"]).square()
        d_full = torch.maximum(pt.face_d - 0.004, y_top - v)
        d_must = torch.maximum(torch.maximum(xf.abs() - 1.15 * mw, q["nostril_y"] + 0.007 - v),
                               v - (q["mouth_y"] - q["lip_up"] * 0.6 - 0.1 * (xf / mw).square() * 0.02))
        lip_bottom = q["mouth_y"] + q["lip_lo"] + q["gap"]
        gy = v - 0.5 * (lip_bottom + q["chin"])
        d_goat = (torch.sqrt((xf / (0.75 * mw)).square() + (gy / (0.5 * (q["chin"] - lip_bottom) + 0.012)).square())
                  - 1.0) * 0.03
        d_goat = torch.minimum(torch.maximum(d_goat, pt.face_d - 0.004), d_must)
        d = torch.where(kind == P.BEARD_MOUSTACHE, d_must, torch.where(kind == P.BEARD_GOATEE, d_goat, d_full))
        fine = pt._tex("fine", "tex_i", "tex_sy", "tex_sx", salt=3)[:, 0]
        density = torch.where(kind == P.BEARD_STUBBLE, 0.35 + 0.1 * fine, q["beard_density"] * (0.85 + 0.1 * fine))
        alpha = pt._fill(d, 0.01) * density.clamp(0.0, 1.0)
        return _lerp(alb, pt.hair * 0.8, alpha)

    def _brows(self, alb: torch.Tensor, soft) -> torch.Tensor:
        q, v, xm = self.q, self.v, self.xm
        cy = geometry.brow_centre_y(xm, self.p, self.g)
        t = ((xm - q["brow_in"]) / (q["brow_out"] - q["brow_in"])).clamp(0.0, 1.0)
        th = q["brow_thick"] * (1.05 - 0.55 * t)
        d = torch.maximum((v - cy).abs() - 0.5 * th, torch.maximum(q["brow_in"] - xm, xm - q["brow_out"]))
        hatch = 0.8 + 0.2 * torch.sin((xm * 3.0 - v) * self.size * 1.4)
        brow_col = self.hair * 0.75 + 0.05
        return _lerp(alb, brow_col, self._fill(d, soft * 1.5) * 0.9 * hatch)

    def _eyes(self, alb: torch.Tensor, soft) -> torch.Tensor:
        q, v, xm = self.q, self.v, self.xm
        ew = q["eye_w"]
        ex = (xm - q["eye_dx"]) / ew  # + = outer corner
        ey = v - q["eye_y"] + q["eye_tilt"] * ex * ew
        shape = (1.0 - ex.square()).clamp_min(0.0)
        up = -q["eye_hu"] * shape.pow(0.8) * (1.0 + 0.15 * ex)
        lo = q["eye_hl"] * shape
        d_eye = torch.maximum(torch.maximum(up - ey, ey - lo), (ex.abs() - 1.0) * ew)
        a_eye = self._fill(d_eye, soft)
        # Eyeball: sclera with lid shadow, iris with a dark limbus, pupil.
        ix = q["gaze_x"] * self.sgn * ew * 0.6
        iy = q["gaze_y"] * q["eye_hu"] - 0.15 * q["eye_hu"]
        ri = 0.47 * ew
        r = torch.sqrt((ex * ew - ix).square() + (ey - iy).square())
        sclera = torch.tensor([0.93, 0.90, 0.87], device=v.device, dtype=v.dtype)[None]
        iris = torch.from_numpy(P.IRIS_COLOURS).to(v.device)[self.p["iris_col"].long()] * self.p["iris_shade"][:, None]
        rn = (r / ri).clamp(0.0, 1.0)
        fibres = 1.0 + 0.08 * torch.sin(torch.atan2(ey - iy, ex * ew - ix) * 14.0)
        iris_shade = (0.6 + 0.6 * (1.0 - rn)) * (1.0 - 0.6 * rn.pow(6)) * fibres
        iris_field = iris[:, :, None, None] * iris_shade[:, None]
        eye = torch.lerp(sclera[:, :, None, None].expand_as(alb), iris_field, self._fill(r - ri, soft)[:, None])
        eye = eye * (1.0 - 0.95 * self._fill(r - 0.42 * ri, soft))[:, None]
        lid_shadow = ((ey - up) / (q["eye_hu"] + q["eye_hl"] + 1e-4)).clamp(0.0, 1.0)
        eye = eye * (0.55 + 0.45 * lid_shadow.sqrt())[:, None]
        alb = torch.lerp(alb, eye, a_eye[:, None])
        # Lash line along the upper lid, a lower-lid line, an eyelid crease.
        lash_w = (0.0018 + 0.0025 * shape) * (ex > -1.02).float() * (ex < 1.12).float()
        lash = self._fill((ey - up).abs() - lash_w, soft)
        lash = lash * (ex < 1.12).float() * (ex > -1.02).float()
        alb = _lerp(alb, self.hair * 0.3 + 0.02, lash * 0.95)
        lower_line = self._fill((ey - lo).abs() - 0.001, soft) * (shape > 0).float() * 0.35
        alb = alb * (1.0 - lower_line[:, None])
        crease = self._fill((ey - (up * 1.45 - 0.006)).abs() - 0.0012, soft) * (shape > 0.1).float() * 0.25
        return alb * (1.0 - crease[:, None])

    def _catchlights(self, colour: torch.Tensor) -> torch.Tensor:
        q, v, xm = self.q, self.v, self.xm
        ew = q["eye_w"]
        ix = q["gaze_x"] * self.sgn * ew * 0.6 - 0.12 * ew * self.light[:, 0, None, None] * self.sgn
        iy = q["gaze_y"] * q["eye_hu"] - 0.15 * q["eye_hu"] - 0.1 * ew
        d = torch.sqrt(((xm - q["eye_dx"]) - ix).square() + ((v - q["eye_y"]) - iy).square())
        open_ = (q["open_eye"] > 0.5).float()
        spot = self._fill(d - 0.06 * ew, torch.clamp(self.px, min=0.002)) * 0.7 * open_
        return colour + spot[:, None] * (1.0 - colour)

    def _nostrils(self, alb: torch.Tensor, soft) -> torch.Tensor:
        q, v = self.q, self.v
        cx = 0.5 + q["shift_f"] * (1.0 + geometry.NOSE_TIP_YAW_GAIN * 0.8)
        nx = (self.u - cx).abs() - 0.42 * q["nose_w"]
        ny = v - (q["nostril_y"] - 0.004)
        r = torch.sqrt((nx / (0.28 * q["nose_w"])).square() + (ny / 0.0055).square())
        return alb * (1.0 - 0.75 * self._fill((r - 1.0) * 0.006, soft))[:, None]

    def _mouth(self, alb: torch.Tensor, soft) -> torch.Tensor:
        p, g, q, v = self.p, self.g, self.q, self.v
        mx = self.xf / q["mouth_w"]
        line = geometry.lip_line(mx, p, g)
        low_inner = line + q["gap"] * (1.0 - mx.square()).clamp_min(0.0)
        outside = (mx.abs() - 1.0) * q["mouth_w"]
        d_up = torch.maximum(torch.maximum(line - geometry.upper_lip_thickness(mx, p) - v, v - line), outside)
        d_lo = torch.maximum(torch.maximum(low_inner - v, v - (low_inner + geometry.lower_lip_thickness(mx, p))),
                             outside)
        lip = self.skin * torch.tensor([0.82, 0.55, 0.55], device=v.device) + torch.tensor(
            [0.1, 0.02, 0.03], device=v.device) * p["lip_red"][:, None]
        lower_sheen = 1.05 + 0.15 * torch.exp(-((v - low_inner) / 0.012 - 0.8).square())
        lip_lo_col = lip[:, :, None, None] * lower_sheen[:, None]
        alb = _lerp(alb, lip * 0.88, self._fill(d_up, soft))
        alb = torch.lerp(alb, lip_lo_col.expand_as(alb), self._fill(d_lo, soft)[:, None])
        inside = (mx.abs() < 1.0).float()
        d_open = torch.maximum(torch.maximum(line - v, v - low_inner), outside)
        mouth_in = self._fill(d_open, soft) * inside
        teeth = self._fill(v - (line + 0.45 * q["gap"] * (1.0 - mx.square())), soft) * (mx.abs() < 0.7).float()
        dark = torch.tensor([0.12, 0.04, 0.04], device=v.device, dtype=alb.dtype)[None, :, None, None]
        white = torch.tensor([0.86, 0.82, 0.74], device=v.device, dtype=alb.dtype)[None, :, None, None]
        teeth = teeth * (q["gap"] > 0).float()
        interior = torch.lerp(dark.expand_as(alb), white.expand_as(alb), teeth[:, None])
        alb = torch.lerp(alb, interior, mouth_in[:, None])
        lip_line = self._fill((v - line).abs() - 0.0012, soft) * (1.0 - mx.square()).clamp_min(0.0).sqrt()
        corners = _gauss(mx.abs() - 1.0, v - line, 0.12, 0.01) * 0.3
        return alb * (1.0 - (0.55 * lip_line + corners)[:, None])

    def _shading(self, d_face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lambert + Blinn shading of the face and ambient occlusion: (shade, specular) ``(B, H, W)``.

        Normals come from a head ellipsoid, perturbed by the slopes of Gaussian bumps (nose ridge, tip,
        alae, cheekbones, chin, lower lip; eye sockets as dents). Each bump is evaluated only in the
        row band it can reach.
        """
        q, v = self.q, self.v
        u0 = self.u - (0.5 + q["shift_o"] + 0.5 * q["shift_f"])
        nx = u0 / (1.1 * q["head_w"])
        ny = (v - 0.5) / 0.42
        nz = (1.0 - nx.square() - ny.square()).clamp_min(0.04).sqrt()
        relief = torch.zeros(self.b, 3, *v.shape[1:], device=v.device)  # slope x, slope y, occlusion
        self._add_in_window(relief, 0.38, 0.76, Painter._nose_relief)
        self._add_in_window(relief, 0.33, 0.70, Painter._eye_relief)
        self._add_in_window(relief, 0.66, 0.86, Painter._mouth_relief)
        self._add_in_window(relief, 0.72, 0.97, Painter._chin_relief)
        nx = nx + relief[:, 0]
        ny = ny + relief[:, 1]
        inv = torch.rsqrt(nx.square() + ny.square() + nz.square())
        nx, ny, nz = nx * inv, ny * inv, nz * inv
        lx, ly, lz = (self.light[:, i, None, None] for i in range(3))
        lam = ((nx * lx + ny * ly + nz * lz + 0.25) / 1.25).clamp_min(0.0)  # wrapped Lambert: skin scatters
        hx, hy, hz = (self.half[:, i, None, None] for i in range(3))
        ndh = (nx * hx + ny * hy + nz * hz).clamp_min(0.0)
        spec = 0.1 * q["light_str"] * ndh.square().square().square().square()  # ndh ** 16
        edge = (1.0 + d_face / 0.03).clamp(0.0, 1.0)
        ao = 1.0 - relief[:, 2] - 0.3 * edge.square()
        return (q["ambient"] + q["light_str"] * lam) * ao, spec

    def _add_in_window(self, field: torch.Tensor, v_lo: float, v_hi: float, fn) -> None:
        """``field[:, :, band] += fn(painter_band)`` for the row band of canonical ``[v_lo, v_hi]``."""
        sub, r0, r1 = self._window(v_lo, v_hi)
        field[:, :, r0:r1] += fn(sub)

    @staticmethod
    def _bump(dx, dy, sx, sy, height, sign=1.0):
        """A Gaussian bump: (height field, x slope, y slope) for the normal perturbation."""
        e = _gauss(dx, dy, sx, sy) * height
        return e, sign * 2.0 * dx / (sx * sx) * e, 2.0 * dy / (sy * sy) * e

    @staticmethod
    def _nose_relief(pt: Painter) -> torch.Tensor:
        q, v = pt.q, pt.v
        # Ridge: narrow at the bridge, wide at the tip; the tip moves more with yaw.
        tn = ((v - q["nose_top"]) / (q["nose_tip"] - q["nose_top"])).clamp(0.0, 1.0)
        ridge_x = pt.u - (0.5 + q["shift_f"] * (1.0 + geometry.NOSE_TIP_YAW_GAIN * tn))
        wr = q["nose_w"] * (0.3 + 0.4 * tn)
        env = ((v - q["nose_top"] + 0.01) / 0.02).clamp(0, 1) * ((q["nostril_y"] - v) / 0.01).clamp(0, 1)
        e = torch.exp(-(ridge_x / wr).square()) * env * 0.009 * q["nose_bridge"]
        gx = 2.0 * ridge_x / wr.square() * e
        tip_x = pt.u - (0.5 + q["shift_f"] * (1.0 + geometry.NOSE_TIP_YAW_GAIN))
        _, bx, by = Painter._bump(tip_x, v - q["nose_tip"] - 0.004, 0.55 * q["nose_w"], 0.018, 0.012)
        _, ax, ay = Painter._bump(tip_x.abs() - 0.72 * q["nose_w"], v - q["nostril_y"] + 0.008, 0.014, 0.012,
                                   0.006, torch.sign(tip_x))
        under_nose = _gauss(pt.xf, v - q["nostril_y"] - 0.01, q["nose_w"] * 1.1, 0.01)
        return torch.stack([gx + bx + ax, by + ay, 0.3 * under_nose], 1)

    @staticmethod
    def _eye_relief(pt: Painter) -> torch.Tensor:
        q, v, xm = pt.q, pt.v, pt.xm
        _, cx, cy = Painter._bump(xm - q["eye_dx"] - 0.02, v - q["eye_y"] - 0.075, 0.05, 0.04,
                                   0.006 + 0.006 * q["cheek"], pt.sgn)
        socket, sx, sy = Painter._bump(xm - q["eye_dx"], v - q["eye_y"] + 0.004, 0.06, 0.035, -0.004, pt.sgn)
        return torch.stack([cx + sx, cy + sy, socket.abs() * (0.225 / 0.004)], 1)

    @staticmethod
    def _mouth_relief(pt: Painter) -> torch.Tensor:
        q, v = pt.q, pt.v
        y_lip = q["mouth_y"] + q["lip_lo"] + q["gap"]
        _, bx, by = Painter._bump(pt.xf, v - y_lip, q["mouth_w"] * 0.8, 0.014, 0.002)
        under_lip = _gauss(pt.xf, v - y_lip - 0.012, q["mouth_w"] * 0.7, 0.01)
        return torch.stack([bx, by, 0.25 * under_lip], 1)

    @staticmethod
    def _chin_relief(pt: Painter) -> torch.Tensor:
        _, bx, by = Painter._bump(pt.xf, pt.v - pt.q["chin"] + 0.045, 0.05, 0.03, 0.004)
        return torch.stack([bx, by, torch.zeros_like(bx)], 1)

    # ----------------------------------------------------------- accessories
    @staticmethod
    def hat(img: torch.Tensor, pt: Painter) -> torch.Tensor:
        p, q, v = pt.p, pt.q, pt.v
        h = pt.hair_fields()
        hat_y = q["hairline"] + 0.04 - 0.015 * q["hat_style"]
        d_dome = torch.maximum(h["d_cap"] - 0.012, v - hat_y)
        colour = _hsv(p["hat_h"], 0.2 + 0.6 * p["hat_h"], 0.15 + 0.75 * p["hat_v"])
        knit = 0.85 + 0.15 * torch.sin(h["hx"] * pt.size * 0.8)
        cuff = ((v - hat_y + 0.045) / 0.004).clamp(0, 1)
        shade = (q["ambient"] + q["light_str"] * (0.6 - 0.8 * h["hx"] * pt.light[:, 0, None, None])) * knit
        shade = shade * (1.0 - 0.25 * cuff * (q["hat_style"] < 0.5).float())
        brim_d = (torch.sqrt((h["hx"] / (1.12 * q["head_w"])).square() + ((v - hat_y) / 0.024).square()) - 1.0) * 0.024
        brim = pt._fill(brim_d, 1.5 * pt.px) * (q["hat_style"] > 0.5).float()
        # The brim shades the forehead under it.
        under = pt._fill(torch.maximum(v - hat_y - 0.06, hat_y - v), 0.02) * 0.3 * (q["hat_style"] > 0.5).float()
        under = under * pt._fill(h["hx"].abs() - q["head_w"], 0.02)
        img = img * (1.0 - under[:, None])
        img = _lerp(img, colour[:, :, None, None] * shade[:, None], pt._fill(d_dome, 1.5 * pt.px))
        return _lerp(img, colour[:, :, None, None] * (0.6 * shade)[:, None], brim)

    @staticmethod
    def glasses(img: torch.Tensor, pt: Painter) -> torch.Tensor:
        p, q, v, xm = pt.p, pt.q, pt.v, pt.xm
        style = q["glasses_style"]
        gw = 0.062 + 0.012 * style
        gh = 0.038 + 0.01 * (1.0 - style)
        rad = gh * (0.35 + 0.6 * style)
        dx = (xm - q["eye_dx"] - 0.004).abs() - (gw - rad)
        dy = (v - q["eye_y"] - 0.006).abs() - (gh - rad)
        d = torch.sqrt(dx.clamp_min(0).square() + dy.clamp_min(0).square()) + torch.maximum(dx, dy).clamp_max(0) - rad
        thick = 0.0028 + 0.002 * (1.0 - style)
        rim = (d.abs() - thick)
        bridge_y = q["eye_y"] - 0.006 + 0.02 * (xm / (q["eye_dx"] - gw + 1e-3)).square() * 0.2
        d_bridge = torch.maximum((v - bridge_y).abs() - thick, xm - (q["eye_dx"] - gw + 0.01))
        arm_x0 = q["eye_dx"] + gw
        d_arm = torch.maximum((v - q["eye_y"] + 0.01).abs() - thick, torch.maximum(arm_x0 - xm,
                                                                                    xm - q["head_w"] - 0.004))
        d_frame = torch.minimum(torch.minimum(rim, d_bridge), d_arm)
        frame = torch.from_numpy(P.FRAME_COLOURS).to(v.device)[p["glasses_col"].long()]
        lens = pt._fill(d, pt.px)
        glare = 0.12 * torch.exp(-(((v - q["eye_y"]) + (xm - q["eye_dx"]) * 0.8) / 0.01).square())
        img = img * (1.0 - 0.08 * lens)[:, None] + (lens * glare * q["light_str"])[:, None]
        shade = (q["ambient"] + q["light_str"] * 0.7)
        return _lerp(img, frame[:, :, None, None] * shade[:, None], pt._fill(d_frame, pt.px))

    # ------------------------------------------------------------ the camera
    def camera(self, img: torch.Tensor) -> torch.Tensor:
        p = self.p
        gains = torch.stack([p["cam_cast_r"], p["cam_cast_g"], p["cam_cast_b"]], 1) * p["exposure"][:, None]
        img = img * gains[:, :, None, None]
        contrast = p["cam_contrast"][:, None, None, None]
        img = (img - 0.5) * contrast + 0.5
        vignette = 1.0 - 0.2 * ((self.X - 0.5).square() + (self.Y - 0.5).square())
        return img * vignette

    def degrade(self, img: torch.Tensor) -> torch.Tensor:
        p, b, size = self.p, self.b, self.size
        sigma = p["blur"] * (size / 128.0)
        if bool((sigma > 0.15).any()):
            radius = max(1, int(math.ceil(2.5 * float(sigma.detach().max()))))
            t = torch.arange(-radius, radius + 1, device=img.device, dtype=torch.float32)
            k = torch.exp(-0.5 * (t[None] / sigma.clamp_min(0.15)[:, None]).square())
            k = (k / k.sum(1, keepdim=True)).repeat_interleave(3, 0)  # (B*3, K)
            x = img.reshape(1, b * 3, size, size)
            x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
            x = F.conv2d(x, k[:, None, None, :], groups=b * 3)
            x = F.conv2d(x, k[:, None, :, None], groups=b * 3)
            img = x.reshape(b, 3, size, size)
        q = p["jpeg"][:, None, None, None]
        if bool((q > 0).any()):
            # Compression-like artefacts: chroma subsampling, 8x8 block flattening, level banding.
            luma = img.mean(1, keepdim=True)
            chroma = F.avg_pool2d(img - luma, 2)
            chroma = F.interpolate(chroma, scale_factor=2, mode="nearest")
            img = torch.lerp(img, luma + chroma, q.clamp(max=1.0))
            blocks = F.interpolate(F.avg_pool2d(img, BLOCK), scale_factor=BLOCK, mode="nearest")
            img = torch.lerp(img, blocks, 0.12 * q)
            levels = 255.0 - 200.0 * q
            banded = torch.round(img * levels) / levels
            if self._straight_through(img):
                banded = banded.detach() + (img - img.detach())  # forward: banded, exactly; backward: identity
            img = banded
        noise = self._tex("fine", "noise_i", "noise_sx", "noise_sy")
        return img + noise * p["noise"][:, None, None, None]
