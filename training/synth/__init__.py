"""Synthetic training data: (real, fake) pairs whose fakes carry GAN upsampling texture (issue 3)."""
