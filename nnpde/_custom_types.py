"""Shape aliases, defined once. Checked at run time while the tests run
(``--jaxtyping-packages`` in pyproject.toml), free otherwise."""

from jaxtyping import Array, Float

State = Float[Array, "channels *spatial"]
"""One unbatched state: channels first, then the grid axes. A function annotated
``(u: State) -> State`` returns the shape it was given."""

Field = Float[Array, "*spatial"]
"""A cell field on the grid, no channel axis (a coefficient, a source)."""
