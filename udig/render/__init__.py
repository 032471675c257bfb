"""Turning an :class:`~udig.explanation.Explanation` into things people read: words, colours, HTML, files.

Plain functions over plain data; no Gradio here (the app passes these values to its components). One module
per job:

- :mod:`.words`: **words, not word pieces.** A word's sub-word tokens are summed and the word is located in
  the original text through the tokenizer's character offsets, so a highlight is always an exact slice of the
  input. **Colours** are max-abs scaled to [-1, 1] (red = +, blue = -, readable with any colour vision):
  positive pushes the model *toward* the explained label, negative *away* from it.
- :mod:`.markup`: HTML and Markdown (highlight, legend, standalone page, model-card snippet).
- :mod:`.image`: **images** of the highlight (PNG, SVG) for model cards, whose renderers may strip the HTML's
  inline colours; the same words and colours as the HTML.
- :mod:`.tables` and :mod:`.exports`: the demo's tables; JSON and CSV files.

**Everything user-typed is escaped** wherever HTML or Markdown is produced; CSV cells that a spreadsheet would
run as a formula are neutralised.
"""

from .exports import to_csv, to_json, versions
from .image import IMAGE_FORMATS, highlight_image
from .markup import escape, escape_markdown, highlight_html, legend_html, model_card, standalone_html
from .tables import TOKEN_HEADERS, label_value, metric_rows, token_rows, winners
from .words import Word, colour, highlight_value, max_abs, shared_scale, word_at, words

__all__ = [
    "Word",
    "words",
    "word_at",
    "max_abs",
    "shared_scale",
    "highlight_value",
    "highlight_html",
    "legend_html",
    "highlight_image",
    "IMAGE_FORMATS",
    "label_value",
    "token_rows",
    "TOKEN_HEADERS",
    "metric_rows",
    "winners",
    "standalone_html",
    "model_card",
    "to_json",
    "to_csv",
    "versions",
    "escape",
    "escape_markdown",
    "colour",
]
