"""The package's layers only point down: no upward import, so no cycle between subpackages.

Every ``import`` in ``s3r_zoo`` (at module level or inside a function) is read from the
source. A unit (a top-level module or subpackage of ``s3r_zoo``) may import only units of
a LOWER layer than its own. To add a module, put it in the lowest layer whose units it
needs; if a lower unit seems to need a higher one, move the shared piece down instead.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "s3r_zoo"

# bottom to top; a unit imports only from the lines above its own
LAYERS = [
    {"version", "files", "spectral", "lowrank", "options", "metrics", "progress", "lazy"},  # pure helpers
    {"bands", "plots"},  # band metadata, normalisation, band adaptation; PNG plots
    {"checkpoint", "data", "weights"},  # file formats: checkpoints, cubes and data sets, weight lookup
    {"models"},  # timm registry, release records, encoders, heads
    {"train"},  # the Objective contract, the one training loop, its state
    {"baselines"},  # Table 2 objectives
    {"pretrain"},  # S3R objectives, the objective table, the pre-training runner
    {"finetune", "hub", "embed"},  # fine-tuning; hub export / push; features of a folder of cubes
    {"release", "demo", "predict", "evaluate"},  # predict: a fine-tuned checkpoint applied to new cubes;
    # evaluate: the label-efficiency protocol on the user's data
    {"cli"},
    {"__main__", "__init__"},  # the command line entry point; the package's public surface
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(package_dir=PACKAGE):
    """(importing unit, imported unit, 'file:line') for every import of an s3r_zoo module."""
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).with_suffix("")
        module = ".".join(rel.parts)
        package = module[: -len(".__init__")] if module.endswith(".__init__") else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "s3r_zoo":
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "s3r_zoo"]
            for t in targets:
                yield _unit(module), _unit(t), f"{path.relative_to(package_dir.parent)}:{node.lineno}"


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert units == set(RANK), f"add new units to LAYERS (missing: {units - set(RANK)}, gone: {set(RANK) - units})"


def _upward(package_dir=PACKAGE):
    return [f"{where}: {src} (layer {RANK[src]}) imports {dst} (layer {RANK[dst]})"
            for src, dst, where in _imports(package_dir) if src != dst and RANK[dst] >= RANK[src]]


def test_imports_only_point_down():
    upward = _upward()
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


@pytest.mark.parametrize("where,code", [
    ("bands.py", "from .models import build_encoder\n"),  # module level, relative
    ("data/io.py", "def f():\n    from ..train import Trainer\n"),  # inside a function, from a subpackage
    ("train/engine.py", "import s3r_zoo.pretrain.run\n"),  # absolute
    ("checkpoint.py", "from . import weights\n"),  # same layer, other unit
])
def test_the_check_finds_an_upward_import(tmp_path, where, code):
    pkg = tmp_path / "s3r_zoo"
    (pkg / where).parent.mkdir(parents=True, exist_ok=True)
    (pkg / where).write_text(code)
    (pkg / "models").mkdir(exist_ok=True)
    (pkg / "train").mkdir(exist_ok=True)
    assert len(_upward(pkg)) == 1 and where in _upward(pkg)[0]


def test_benchmarks_use_the_public_api_only():
    """benchmarks/ imports from s3r_zoo only names a module exports (its ``__all__``): no private helper and no
    trainer internals, so the package can change inside without breaking the harness."""
    import importlib

    bad = []
    for path in sorted((PACKAGE.parent / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "s3r_zoo":
                module = importlib.import_module(node.module)
                public = getattr(module, "__all__", None)
                bad += [f"{path.name}:{node.lineno}: {node.module}.{a.name}" for a in node.names
                        if (a.name not in public if public is not None else a.name.startswith("_"))]
    assert not bad, "benchmarks import names their modules do not export:\n" + "\n".join(bad)


def test_the_package_never_imports_the_benchmarks():
    hits = [f"{where}" for src, dst, where in _imports() if dst in ("bench", "benchmarks")]
    text_hits = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py") if "import benchmarks" in
                 p.read_text() or "from benchmarks" in p.read_text()]
    assert not hits and not text_hits and not (PACKAGE / "bench").exists()
