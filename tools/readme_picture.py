"""Redraw the README's picture of an explanation, docs/images/explanation.png, offline.

    python tools/readme_picture.py [--out docs/images/explanation.png]

The demo's default settings (UDIG, MaxCount, real-word anchors) on the offline default model, drawn by the
same function as the demo's PNG export (udig.render.highlight_image).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from udig import Explainer, load_model  # noqa: E402
from udig.render import highlight_image  # noqa: E402

TEXT = "A gorgeous, witty, seductive movie that never quite earns its ending."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "explanation.png")
    args = parser.parse_args(argv)
    explanation = Explainer(*load_model()).explain(TEXT, method="udig", strategy="maxcount", candidates="words")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(highlight_image(explanation))
    print(f"{args.out}: {explanation.target_label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
