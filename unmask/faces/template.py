"""A mean 68-point face in the FFHQ-aligned frame, for aligned crops that come without landmarks.

Measured once: dlib 68-point landmarks of the real faces that packages ship (skimage's astronaut and
the confidently detected faces of insightface's ``t1.jpg``), FFHQ-aligned at 1024 px and averaged,
as fractions of the crop side (pixel centres at ``(i + 0.5) / size``). Used by the pipeline to
estimate the mask region of an aligned input when no mask is given.
"""

from __future__ import annotations

import numpy as np

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


def template_landmarks(size: int) -> np.ndarray:
    """The mean landmarks in pixel coordinates of a ``size``×``size`` FFHQ-aligned crop, (68, 2)."""
    return TEMPLATE_68 * size - 0.5
