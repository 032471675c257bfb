"""udig: explain transformer text models with Uniform Discretized Integrated Gradients.

Beside UDIG (Roy & Kundu 2024) it implements the methods it improves on: Integrated Gradients
(Sundararajan et al. 2017) and Discretized IG (Sanyal & Ren 2021). Usable without Gradio::

    from udig import Explainer, load_model
    model, tokenizer = load_model()
    explanation = Explainer(model, tokenizer).explain("a gorgeous, moving film", method="udig")
"""

from .explainer import BASELINES, METHODS, Explainer
from .explanation import Explanation, QAExplanation
from .models import DEFAULT_MODEL, ModelLoadError, load_model
from .paths import STRATEGIES
from .vocab import CANDIDATE_RULES

__all__ = [
    "BASELINES",
    "CANDIDATE_RULES",
    "DEFAULT_MODEL",
    "METHODS",
    "STRATEGIES",
    "Explainer",
    "Explanation",
    "ModelLoadError",
    "QAExplanation",
    "load_model",
]
__version__ = "0.1.0"
