"""Feature extraction: frozen models, built through the model registry, turn videos into cached
features that the long-video models train on. It stands above ``models/`` and below ``engine/``;
``data/`` only reads the stored features (:mod:`lightact.data.longvideo.store`).

``settings`` (what decides the features; the experiment config uses it) imports no torch itself;
``encoders`` builds the frozen models and ``extract`` runs the streaming extraction.
"""
