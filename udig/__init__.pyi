# What `udig` exports, for type checkers and for lazy_loader.attach_stub (udig/__init__.py), which loads each
# name from its module the first time it is used.
from .explainer import Explainer as Explainer
from .explanation import Explanation as Explanation
from .explanation import QAExplanation as QAExplanation
from .methods import METHODS as METHODS
from .methods import PATH_METHODS as PATH_METHODS
from .methods import get_method as get_method
from .models import DEFAULT_MODEL as DEFAULT_MODEL
from .models import ModelLoadError as ModelLoadError
from .models import load_model as load_model
from .paths import STRATEGIES as STRATEGIES
from .settings import BASELINES as BASELINES
from .settings import PARAMETERS as PARAMETERS
from .settings import Settings as Settings
from .tasks import TASKS as TASKS
from .version import __version__ as __version__
from .vocab import CANDIDATE_SETS as CANDIDATE_SETS
