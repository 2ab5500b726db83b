"""A user's own project, as the custom workload expects one: a small ResNet-style CNN (PyTorch and Keras) and an
image folder of PNG files (``root/<split>/<class>/<n>.png``) read lazily, by a torch Dataset and by tf.data."""
