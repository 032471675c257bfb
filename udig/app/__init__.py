"""The Gradio demo of udig, as a package; ``app.py`` at the repository root lays it out and serves it.

- :mod:`~udig.app.config`: what the demo offers and allows (every environment variable it reads);
- :mod:`~udig.app.service`: shared models and explainers, the results cache, the attribution call, the
  one-time start-up work (:class:`~udig.app.service.StartUp`);
- :mod:`~udig.app.memory`: freed memory handed back to the system (glibc's thresholds, a trim per request);
- :mod:`~udig.app.waiting`: the queue's places per visitor and its time estimates;
- :mod:`~udig.app.views`: results turned into component values;
- :mod:`~udig.app.evaluation`: what the 500-sentence evaluation found, as shipped in ``assets/evaluation.json``;
- :mod:`~udig.app.links`: share links, and restoring one on page load;
- :mod:`~udig.app.handlers`: the event handlers (:class:`Demo`);
- :mod:`~udig.app.content`: the texts.
"""

from .config import PAPER_DEFAULT, UNTRAINED_QA_MODEL, AppConfig, Limits, qa_notice
from .handlers import Demo

__all__ = ["PAPER_DEFAULT", "UNTRAINED_QA_MODEL", "AppConfig", "Demo", "Limits", "qa_notice"]
