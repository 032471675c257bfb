"""One settings table: the rules every caller (Explainer, demo, CLI) checks values against."""

from __future__ import annotations

import ast
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import pytest

import udig
from udig import evaluation as evaluate
from udig.methods import PATH_METHODS, REGISTRY, MethodSettings
from udig.settings import PARAMETERS, Bounds, Settings


def test_every_setting_has_exactly_one_rule():
    """One field per table row, and the table is the only place a default is stated (Settings.make fills them)."""
    assert [f.name for f in fields(Settings)] == list(PARAMETERS)
    assert all(f.default is MISSING and f.default_factory is MISSING for f in fields(Settings))
    made = Settings.make()
    assert {name: getattr(made, name) for name in PARAMETERS if name != "baseline"} == {
        name: parameter.default for name, parameter in PARAMETERS.items() if name != "baseline"
    }
    assert made.baseline == REGISTRY[made.method].paper_baseline  # None in the table: the method's paper's


def test_what_a_method_reads_is_a_settings_field_of_the_same_type():
    """Methods see Settings through methods.MethodSettings (settings.py imports methods, not the reverse): each
    property it declares must be a field of Settings, typed alike."""
    declared = {
        name: member.fget.__annotations__["return"]
        for name, member in vars(MethodSettings).items()
        if isinstance(member, property)
    }
    annotations = {f.name: f.type for f in fields(Settings)}
    assert declared and all(annotations.get(name) == kind for name, kind in declared.items()), declared
    for method in REGISTRY.values():  # what each method says it uses is readable through the view (or the Explainer's)
        assert method.uses - set(declared) <= {"baseline", "objective"}, method.name


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (10**400, "steps must be between 2 and 100, got 1000"),  # a JSON integer beyond a float's range
        ("1" + "0" * 400, "steps must be between 2 and 100, got 1000"),
        ("1" + "0" * 5000, "steps must be a whole number"),  # past Python's digit limit for int()
        ("1e999", "steps must be a whole number, got '1e999'"),
        (1e300, "steps must be between 2 and 100, got 1000"),
        (float("inf"), "steps must be a whole number, got inf"),
    ],
    ids=["int 10^400", "text 10^400", "text 10^5000", "text 1e999", "float 1e300", "inf"],
)
def test_numbers_beyond_a_float_are_refused_with_a_short_message(value, message):
    """A link once sent 1 and 400 zeros: float() raised OverflowError, which no caller expects from a check."""
    bounds = Bounds(ranges={"steps": (2, 100)})
    with pytest.raises(ValueError) as refused:
        Settings.make({"steps": value}, bounds=bounds, lenient=True)
    assert str(refused.value).startswith(message) and len(str(refused.value)) < 200
    for huge in (10**400, "1e400", -(10**400)):
        with pytest.raises(ValueError, match="max_delta must be a number, got"):
            Settings.make({"max_delta": huge}, lenient=True)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"steps": 0}, "steps must be at least 1, got 0"),
        ({"steps": 2.5}, "steps must be a whole number"),
        ({"steps": "30"}, "steps must be a whole number"),  # strict for library calls
        ({"steps": True}, "steps must be a whole number"),
        ({"factor": 7}, "factor must be between 0 and 6, got 7"),
        ({"method": "lime"}, "unknown method 'lime'"),
        ({"method": "UDIG"}, "unknown method"),
        ({"strategy": "best"}, "unknown strategy"),
        ({"candidates": "nouns"}, "unknown candidates"),
        ({"baseline": "  "}, "baseline must be one of"),
        ({"baseline": "x" * 65}, "not 65 characters"),
        ({"nbrs": float("nan")}, "nbrs must be a whole number"),
        ({"steps_": 3}, "unknown setting 'steps_'"),
    ],
)
def test_bad_values_name_the_parameter_and_the_rule(values, message):
    with pytest.raises(ValueError, match=message):
        Settings.make(values)


def test_interface_values_are_accepted_leniently():
    settings = Settings.make(
        {"method": " UDIG ", "steps": 12.0, "factor": "1", "nbrs": "40", "baseline": "PAD"}, lenient=True
    )
    assert (settings.method, settings.steps, settings.factor, settings.nbrs, settings.baseline) == (
        "udig",
        12,
        1,
        40,
        "pad",
    )
    with pytest.raises(ValueError, match="whole number"):
        Settings.make({"steps": "12.5"}, lenient=True)


def test_bounds_only_narrow_the_table():
    bounds = Bounds(ranges={"steps": (2, 100)}, choices={"method": PATH_METHODS}, max_points=120)
    assert Settings.make(steps=100, method="ig", bounds=bounds).n_points == 101  # IG: steps + 1 points
    with pytest.raises(ValueError, match="steps must be between 2 and 100, got 1"):
        Settings.make(steps=1, bounds=bounds)
    with pytest.raises(ValueError, match="unknown method 'random'"):
        Settings.make(method="random", bounds=bounds)
    with pytest.raises(ValueError, match="125 path points is more than this demo allows \\(120\\)"):
        Settings.make(method="udig", steps=30, factor=2, bounds=bounds)
    assert bounds.range("steps") == (2, 100) and bounds.range("factor") == (0, 6)


def test_the_paper_baseline_is_resolved_and_unused_settings_are_neutral():
    assert Settings.make(method="udig").baseline == "mask"
    assert Settings.make(method="dig").baseline == Settings.make(method="ig").baseline == "pad"
    ig = Settings.make(method="ig", strategy="greedy", factor=3, candidates="words", nbrs=7)
    assert ig == Settings.make(method="ig")  # the same explanation, the same settings (and cache key)
    assert (ig.strategy, ig.factor, ig.candidates) == (None, 0, "all")
    random = Settings.make(method="random", baseline="unk", seed=4)
    assert (random.baseline, random.seed, random.n_points) == (None, 4, None)
    assert Settings.make(method="udig", seed=4).seed == 0  # only the random baseline reads the seed


def test_points_per_method():
    assert Settings.make(method="ig", steps=30).n_points == 31
    assert Settings.make(method="udig", steps=30, factor=1).n_points == 2 * 31 + 1
    assert Settings.make(method="dig", steps=5, factor=0).n_points == 7  # m + 2: word, m anchors, baseline


def test_replace_checks_again_and_info_is_json_ready():
    settings = Settings.make(method="dig", strategy="greedy")
    assert settings.replace(steps=10).steps == 10
    with pytest.raises(ValueError, match="steps"):
        settings.replace(steps=0)
    assert settings.info() == {**asdict(settings), "n_points": 32, "n_evaluations": 31}


def test_the_command_line_takes_its_defaults_and_rules_from_the_table():
    parser = evaluate.build_parser()
    args = parser.parse_args([])
    assert (args.steps, args.factor, args.nbrs) == tuple(PARAMETERS[n].default for n in ("steps", "factor", "nbrs"))
    config = evaluate.EvalConfig.from_args(parser.parse_args(["--steps", "7", "--topk", "20.0"]))
    assert config.steps == 7 and config.topk == 20 and isinstance(config.topk, int)
    with pytest.raises(AttributeError):
        config.steps = 8  # frozen: nothing downstream can change the run
    spec = evaluate.parse_methods("udig-greedy:words@pad")[0]
    settings = config.settings(spec)
    assert (settings.method, settings.strategy, settings.candidates, settings.baseline, settings.steps) == (
        "udig",
        "greedy",
        "words",
        "pad",
        7,
    )


def test_every_registered_method_declares_only_known_settings():
    for method in REGISTRY.values():
        assert method.uses <= set(PARAMETERS), method.name
        assert (method.paper_baseline is None) == ("baseline" not in method.uses), method.name


@pytest.mark.parametrize(
    "name", ["method", "strategy", "steps", "factor", "candidates", "rule", "sequential", "objective"]
)
def test_a_refused_value_is_named_not_echoed_whole(name):
    """A public demo hands these messages back: a megabyte sent in any field comes back as a short message
    naming the field, the value's start and its length."""
    huge = "z" * 1_000_000
    with pytest.raises(ValueError) as refused:
        Settings.make({name: huge}, lenient=True)
    message = str(refused.value)
    assert len(message) < 400 and "zzz" in message and "1000002 characters" in message


def _import_graph() -> dict[str, set[str]]:
    """Every udig module's imports of other udig modules: module level, inside functions and under TYPE_CHECKING
    alike (a circle hidden in a function or a type check is still a circle)."""
    root = Path(udig.__file__).parent
    modules = {
        ".".join(("udig", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): path
        for path in root.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
                submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in modules]
                targets = submodules + ([module] if len(submodules) < len(node.names) else [])
            else:
                continue
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target not in (name, "udig"):  # the package itself is every module's parent
                    found.add(target)
        graph[name] = found
    return graph


def test_no_import_circle_in_udig():
    graph = _import_graph()
    assert graph["udig.settings"] >= {"udig.methods"} and "udig.settings" not in graph["udig.methods"]
    circles = []
    for start in graph:  # a module that reaches itself again
        seen, frontier = set(), set(graph[start])
        while frontier:
            module = frontier.pop()
            if module == start:
                circles.append(start)
                break
            if module not in seen:
                seen.add(module)
                frontier |= graph[module]
    assert circles == [], circles
