"""Bundle the top-level templates/, static/ and migrations/ into installed wheels.

An editable install reads them from the checkout, so it gets nothing extra.
"""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class BundleResources(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if version == "editable":
            return
        for name in ("templates", "static", "migrations"):
            build_data["force_include"][name] = f"campaign/_bundled/{name}"
