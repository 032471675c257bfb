"""udig: explain transformer text models with Uniform Discretized Integrated Gradients.

Beside UDIG (Roy & Kundu 2024) it implements the methods it improves on: Integrated Gradients
(Sundararajan et al. 2017) and Discretized IG (Sanyal & Ren 2021). Usable without Gradio::

    from udig import Explainer, load_model

    model, tokenizer = load_model()
    explanation = Explainer(model, tokenizer).explain("a gorgeous, moving film", method="udig")
"""

from .explainer import Explainer
from .explanation import Explanation, QAExplanation
from .methods import METHODS, PATH_METHODS, get_method
from .models import DEFAULT_MODEL, ModelLoadError, load_model
from .paths import STRATEGIES
from .settings import BASELINES, PARAMETERS, Settings
from .tasks import TASKS
from .version import __version__
from .vocab import CANDIDATE_SETS

__all__ = [
    "BASELINES",
    "CANDIDATE_SETS",
    "DEFAULT_MODEL",
    "METHODS",
    "PARAMETERS",
    "PATH_METHODS",
    "STRATEGIES",
    "TASKS",
    "Explainer",
    "Explanation",
    "ModelLoadError",
    "QAExplanation",
    "Settings",
    "__version__",
    "get_method",
    "load_model",
]
