"""Plugin discovery through real entry points, broken plugins, and name resolution."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from nextface_core import hookimpl
from nextface_core.errors import PluginImportError, PluginNotFoundError, UsageError
from nextface_core.plugins import Availability, PluginRegistry


def _write_distribution(root: Path, dist: str, version: str, module: str, source: str) -> None:
    """An installed-looking distribution: a module plus a .dist-info with a real entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[nextface]\n{module} = {module}\n")


GOOD = """
    from nextface_core import hookimpl

    class Flat:
        name = "flat"

    @hookimpl
    def nextface_register_renderers(register):
        register("flat", lambda config: Flat(), description="flat test renderer")
"""

BROKEN = """
    raise RuntimeError("backend library missing")
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in ("oot_flat", "oot_broken"):
        sys.modules.pop(mod, None)


def test_out_of_tree_distribution_is_discovered_listed_and_resolvable(site: Path) -> None:
    _write_distribution(site, "oot-flat", "2.3.4", "oot_flat", GOOD)
    registry = PluginRegistry(env={"NEXTFACE_PLUGINS": "oot_flat"}, builtin=False)
    (info,) = registry.plugins()
    assert (info.name, info.distribution, info.version) == ("oot_flat", "oot-flat", "2.3.4")
    assert info.hooks == ["nextface_register_renderers"]
    assert [r.name for r in info.registrations] == ["flat"]
    renderer = registry.create("renderer", "flat", config=None)
    assert renderer.name == "flat"


def test_plugin_raising_on_import_is_reported_and_others_still_work(site: Path) -> None:
    _write_distribution(site, "oot-flat", "1.0", "oot_flat", GOOD)
    _write_distribution(site, "oot-broken", "0.9", "oot_broken", BROKEN)
    registry = PluginRegistry(env={"NEXTFACE_PLUGINS": "oot_flat,oot_broken"}, builtin=False)
    assert [b.name for b in registry.broken] == ["oot_broken"]
    assert registry.broken[0].distribution == "oot-broken"
    assert "RuntimeError: backend library missing" in registry.broken[0].error
    assert registry.names("renderer") == ["flat"]


def test_block_variable_keeps_a_plugin_out(site: Path) -> None:
    _write_distribution(site, "oot-flat", "1.0", "oot_flat", GOOD)
    registry = PluginRegistry(env={"NEXTFACE_PLUGINS": "oot_flat", "NEXTFACE_BLOCK_PLUGINS": "oot_flat"}, builtin=False)
    assert registry.plugins() == []


def test_unknown_renderer_gives_typed_error_with_install_hint(empty_registry: PluginRegistry) -> None:
    class Only:
        @hookimpl
        def nextface_register_renderers(self, register):
            register("vertex", lambda c: None)

    empty_registry.add("only", Only())
    with pytest.raises(PluginNotFoundError) as info:
        empty_registry.resolve("renderer", "mitsuba")
    err = info.value
    assert err.registered == ["vertex"]
    assert err.distribution == "nextface-render-mitsuba"
    assert "renderer 'mitsuba' is not installed" in err.message
    assert err.hint.startswith("pip install -e ") and err.hint.endswith("plugins/render_mitsuba")  # from the checkout
    assert err.exit_code == 4  # the name is right; this installation lacks the plugin


def test_unknown_third_party_name_lists_choices(empty_registry: PluginRegistry) -> None:
    with pytest.raises(PluginNotFoundError, match=r"model 'flame' is not installed \(registered models: none\)"):
        empty_registry.resolve("model", "flame")


def test_plugin_raising_while_registering_is_broken_not_fatal(empty_registry: PluginRegistry) -> None:
    class Bad:
        @hookimpl
        def nextface_register_renderers(self, register):
            raise ValueError("no GPU driver")

    class Good:
        @hookimpl
        def nextface_register_renderers(self, register):
            register("good", lambda c: "made")

    empty_registry.add("bad", Bad())
    empty_registry.add("good", Good())
    assert empty_registry.names("renderer") == ["good"]
    assert [b.name for b in empty_registry.broken] == ["bad"]
    assert "no GPU driver" in empty_registry.broken[0].error


def test_name_of_a_broken_first_party_plugin_says_it_failed(empty_registry: PluginRegistry) -> None:
    class Bad:
        @hookimpl
        def nextface_register_renderers(self, register):
            raise ImportError("libLLVM missing")

    empty_registry.add("render_mitsuba", Bad(), distribution="nextface-render-mitsuba")
    with pytest.raises(PluginImportError, match="failed to load: ImportError: libLLVM missing"):
        empty_registry.resolve("renderer", "mitsuba")


def test_duplicate_names_are_rejected(empty_registry: PluginRegistry) -> None:
    class A:
        @hookimpl
        def nextface_register_models(self, register):
            register("same", lambda c: 1)

    empty_registry.add("a", A())
    empty_registry.add("b", A())
    with pytest.raises(UsageError, match="registered by both 'a' and 'b'"):
        empty_registry.names("model")


def test_availability_check_results_and_failures(empty_registry: PluginRegistry) -> None:
    def boom() -> Availability:
        raise OSError("probe crashed")

    class P:
        @hookimpl
        def nextface_register_renderers(self, register):
            register("fast", lambda c: 1, check=lambda: Availability(False, "needs CUDA"))
            register("odd", lambda c: 1, check=boom)

    empty_registry.add("p", P())
    assert empty_registry.resolve("renderer", "fast").availability() == Availability(False, "needs CUDA")
    odd = empty_registry.resolve("renderer", "odd").availability()
    assert not odd.ok and "probe crashed" in odd.detail


def test_registries_do_not_share_state() -> None:
    class P:
        @hookimpl
        def nextface_register_losses(self, register):
            register("l1", lambda c: 1)

    first = PluginRegistry(entry_points=False, builtin=False)
    first.add("p", P())
    second = PluginRegistry(entry_points=False, builtin=False)
    assert first.names("loss") == ["l1"] and second.names("loss") == []


def test_a_misspelled_hook_implementation_is_an_error_naming_it(empty_registry: PluginRegistry) -> None:
    class Typo:
        @hookimpl
        def nextface_register_renderer(self, register):  # no such hook: the spec is ..._renderers
            register("lost", lambda c: None)

    with pytest.raises(UsageError, match="plugin 'typo' implements 'nextface_register_renderer' that is no NextFace hook"):
        empty_registry.add("typo", Typo())
    assert empty_registry.plugins() == []


def test_an_installed_plugin_with_a_misspelled_hook_is_broken_not_ignored(site: Path) -> None:
    _write_distribution(site, "oot-flat", "1.0", "oot_flat", GOOD.replace("nextface_register_renderers", "nextface_register_rendrers"))
    registry = PluginRegistry(env={"NEXTFACE_PLUGINS": "oot_flat"}, builtin=False)
    assert [b.name for b in registry.broken] == ["oot_flat"]
    assert "'nextface_register_rendrers' that is no NextFace hook" in registry.broken[0].error
    assert registry.plugins() == []


def test_an_unregistered_name_names_the_conventional_distribution(empty_registry: PluginRegistry) -> None:
    with pytest.raises(PluginNotFoundError) as info:
        empty_registry.resolve("detector", "my_fan")
    assert info.value.hint == "pip install nextface-landmarks-my-fan"


def test_install_hints_name_the_checkout_folder_or_say_where_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from nextface_core import install

    root = install.checkout_root()
    assert root is not None and (root / "plugins" / "render_vertex" / "pyproject.toml").is_file()
    monkeypatch.chdir(tmp_path)
    assert install.install_command("nextface-render-vertex", "s3fs") == f"pip install -e {root / 'plugins/render_vertex'} s3fs"
    assert install.extra_command("ray") == f'pip install -e "{root}[ray]"'
    monkeypatch.chdir(root)
    assert install.install_command("nextface-model-basel") == "pip install -e plugins/model_basel"
    assert install.extra_command("video") == 'pip install -e ".[video]"'
    monkeypatch.setattr(install, "checkout_root", lambda: None)  # as from a wheel
    # the first-party plugins are not on the package index: the hint says where they install from
    assert install.install_command("nextface-render-mitsuba", "s3fs") == (
        "in a NextFace source checkout: pip install -e plugins/render_mitsuba s3fs"
    )
    assert install.installable("nextface-render-mitsuba") and not install.installable("s3fs")
    assert install.extra_command("ray") == 'pip install "nextface[ray]"'
