"""Neural network modules: StyleGAN2, pSp/e4e encoders, identity backbones."""
