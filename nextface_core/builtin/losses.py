"""Built-in loss terms: the photometric, landmark, prior and texture-regulariser terms of the fit."""

from __future__ import annotations

from ..project import hookimpl


@hookimpl
def nextface_register_losses(register) -> None:
    from ..losses import standard_terms

    for term in standard_terms():
        register(term.name, lambda config, term=term: term, description=(term.fn.__doc__ or "").split("\n")[0])
