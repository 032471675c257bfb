"""udig: explain transformer text models with Uniform Discretized Integrated Gradients.

Beside UDIG (Roy & Kundu 2024) it implements the methods it improves on: Integrated Gradients
(Sundararajan et al. 2017) and Discretized IG (Sanyal & Ren 2021). Usable without Gradio::

    from udig import Explainer, load_model

    model, tokenizer = load_model()
    explanation = Explainer(model, tokenizer).explain("a gorgeous, moving film", method="udig")

The names (listed in ``__init__.pyi``) load on first use, as scientific Python's SPEC 1 has it (``lazy_loader``):
importing a part of udig that needs no torch, such as the kernel compiler ``python -m udig.vocab``, does not
import torch (0.9 s of a cold start).
"""

import lazy_loader

from .version import __version__ as __version__

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
