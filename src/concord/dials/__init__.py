"""DIALS (Suau et al., NeurIPS 2022): influence-augmented local simulators (IALS), approximate influence predictors
(AIPs) and the workers that train each agent in its own IALS; selected with ``runner=dials`` / ``trainer=dials``."""
