"""Mean 68-point faces of the crops unmask aligns to: FFHQ's, and the DigiFace-1M DCGAN's.

* :data:`TEMPLATE_68` (FFHQ frame), measured once: dlib 68-point landmarks of the real faces that packages
  ship (skimage's astronaut and the confidently detected faces of insightface's ``t1.jpg``), FFHQ-aligned at
  1024 px and averaged. Used by the pipeline to estimate the mask region of an aligned input without a mask.
* :data:`DIGIFACE_TEMPLATE_68` (the crop of the DigiFace-1M DCGAN, ``REGISTRY["digiface-dcgan"]``), measured by
  :func:`unmask.data.generated.landmark_template`: dlib's landmarks of 1,000 samples (seed 0, truncation 1,
  HOG at 128 px; a face in 865) averaged. Spread (standard deviation over samples, as a fraction of the side):
  mean 0.036 (x 0.040, y 0.031); inner points 17-67 0.028; jaw 0-16 0.058. Its crop is tighter than FFHQ's:
  the eyes sit at y = 0.47 and 0.42 apart, the mouth at 0.82 and the chin at 1.01, just below the image. Real
  photos are aligned to it by a similarity fit (:func:`unmask.faces.align.template_quad`).

Both are fractions of the crop side (pixel centres at ``(i + 0.5) / size``), iBUG order, ``(x, y)``.
Re-measure with ``python -m unmask.evaluate generator --generator digiface-dcgan --template 1000``.
"""

from __future__ import annotations

import numpy as np

from unmask.errors import ConfigError

#: (68, 2) mean landmarks, iBUG order, (x, y) as fractions of the aligned crop.
TEMPLATE_68 = np.array([
    (0.2637, 0.4681),
    (0.2631, 0.5366),
    (0.2678, 0.6038),
    (0.2823, 0.6704),
    (0.3058, 0.7363),
    (0.3409, 0.7983),
    (0.3827, 0.8569),
    (0.4292, 0.9120),
    (0.4959, 0.9314),
    (0.5705, 0.9257),
    (0.6395, 0.8878),
    (0.7031, 0.8416),
    (0.7584, 0.7813),
    (0.7986, 0.7111),
    (0.8219, 0.6320),
    (0.8335, 0.5502),
    (0.8402, 0.4676),
    (0.2897, 0.4048),
    (0.3160, 0.3772),
    (0.3571, 0.3753),
    (0.3988, 0.3854),
    (0.4384, 0.4070),
    (0.5345, 0.4082),
    (0.5870, 0.3872),
    (0.6428, 0.3827),
    (0.6946, 0.3905),
    (0.7440, 0.4186),
    (0.4831, 0.4664),
    (0.4776, 0.5169),
    (0.4728, 0.5705),
    (0.4672, 0.6221),
    (0.4239, 0.6461),
    (0.4490, 0.6588),
    (0.4783, 0.6709),
    (0.5100, 0.6595),
    (0.5415, 0.6478),
    (0.3330, 0.4696),
    (0.3584, 0.4609),
    (0.3924, 0.4614),
    (0.4261, 0.4776),
    (0.3902, 0.4829),
    (0.3556, 0.4828),
    (0.5736, 0.4800),
    (0.6034, 0.4671),
    (0.6387, 0.4694),
    (0.6748, 0.4777),
    (0.6393, 0.4896),
    (0.6069, 0.4897),
    (0.3839, 0.7171),
    (0.4184, 0.7098),
    (0.4550, 0.7091),
    (0.4851, 0.7170),
    (0.5182, 0.7106),
    (0.5697, 0.7108),
    (0.6276, 0.7198),
    (0.5761, 0.7714),
    (0.5242, 0.7941),
    (0.4888, 0.7980),
    (0.4550, 0.7920),
    (0.4173, 0.7674),
    (0.4020, 0.7244),
    (0.4542, 0.7271),
    (0.4856, 0.7325),
    (0.5203, 0.7303),
    (0.6105, 0.7257),
    (0.5235, 0.7552),
    (0.4891, 0.7577),
    (0.4569, 0.7528)], dtype=np.float64)


#: (68, 2) mean dlib landmarks of the DigiFace-1M DCGAN's samples, iBUG order, (x, y) as fractions of its crop.
DIGIFACE_TEMPLATE_68 = np.array([
    (0.1546, 0.4766),
    (0.1567, 0.5679),
    (0.1662, 0.6589),
    (0.1860, 0.7489),
    (0.2205, 0.8324),
    (0.2719, 0.9066),
    (0.3369, 0.9649),
    (0.4133, 1.0038),
    (0.5010, 1.0115),
    (0.5880, 1.0021),
    (0.6636, 0.9617),
    (0.7290, 0.9032),
    (0.7810, 0.8284),
    (0.8151, 0.7439),
    (0.8347, 0.6539),
    (0.8436, 0.5627),
    (0.8451, 0.4711),
    (0.2297, 0.4049),
    (0.2743, 0.3701),
    (0.3348, 0.3606),
    (0.3962, 0.3689),
    (0.4528, 0.3930),
    (0.5473, 0.3908),
    (0.6032, 0.3643),
    (0.6640, 0.3537),
    (0.7244, 0.3624),
    (0.7699, 0.3957),
    (0.4998, 0.4663),
    (0.5003, 0.5291),
    (0.5002, 0.5910),
    (0.5005, 0.6540),
    (0.4276, 0.6956),
    (0.4630, 0.7084),
    (0.5011, 0.7186),
    (0.5385, 0.7081),
    (0.5736, 0.6947),
    (0.2920, 0.4747),
    (0.3297, 0.4545),
    (0.3744, 0.4546),
    (0.4132, 0.4818),
    (0.3715, 0.4911),
    (0.3276, 0.4903),
    (0.5870, 0.4785),
    (0.6259, 0.4497),
    (0.6706, 0.4485),
    (0.7077, 0.4682),
    (0.6737, 0.4845),
    (0.6294, 0.4867),
    (0.3723, 0.8129),
    (0.4184, 0.7902),
    (0.4665, 0.7785),
    (0.5007, 0.7874),
    (0.5354, 0.7774),
    (0.5838, 0.7878),
    (0.6307, 0.8095),
    (0.5866, 0.8529),
    (0.5387, 0.8732),
    (0.5015, 0.8775),
    (0.4641, 0.8744),
    (0.4170, 0.8557),
    (0.3917, 0.8140),
    (0.4666, 0.8088),
    (0.5011, 0.8117),
    (0.5362, 0.8077),
    (0.6109, 0.8116),
    (0.5365, 0.8286),
    (0.5011, 0.8340),
    (0.4664, 0.8298)], dtype=np.float64)

#: The crops a bundle can align to (its ``alignment`` setting) and their mean landmarks.
TEMPLATES: dict[str, np.ndarray] = {"ffhq": TEMPLATE_68, "digiface": DIGIFACE_TEMPLATE_68}


def check_alignment(alignment: str) -> str:
    """``alignment`` if it names a crop of :data:`TEMPLATES`, else a :class:`ConfigError`."""
    if alignment not in TEMPLATES:
        raise ConfigError(f"alignment must be one of {sorted(TEMPLATES)}, got {alignment!r}.")
    return alignment


def alignment_template(alignment: str = "ffhq") -> np.ndarray | None:
    """What :func:`unmask.faces.align.align_face` takes as ``template``: ``None`` for FFHQ's own crop geometry, the
    mean landmarks of another crop otherwise."""
    return None if check_alignment(alignment) == "ffhq" else TEMPLATES[alignment]


def template_landmarks(size: int, alignment: str = "ffhq") -> np.ndarray:
    """The mean landmarks in pixel coordinates of a ``size``×``size`` crop of ``alignment``, (68, 2)."""
    return TEMPLATES[check_alignment(alignment)] * size - 0.5
