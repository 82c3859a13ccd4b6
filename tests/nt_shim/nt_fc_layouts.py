"""NT 0.6.5's own fully connected stax_test networks in the transposed ``'CN'`` layout.

``tests/stax/stax_test.py`` builds its fully connected networks with ``_get_net``, which
picks the layout ``'NC'`` or ``'CN'`` at random (``Dense(batch_axis=1, channel_axis=0)``,
``Flatten(1, 1)``, ``LayerNorm(axis, batch_axis=1, channel_axis=0)``), and checks them
against Monte-Carlo with ``_check_agreement_with_empirical``; NT's 4 sampled cases per test
never reach them. This script calls those two NT helpers, unmodified, on the ``'CN'`` layout
(plain, residual, LayerNorm over ``C`` and over ``NC``, standard parameterization) and
prints one ``PASS``/``FAIL`` line per case. Run from an NT v0.6.5 checkout with this folder,
the gantk repository and the checkout on ``PYTHONPATH`` (as ``tests/test_nt_shim.py`` does).

``_get_net`` reads ``stax.AvgPool``/``GlobalAvgPool`` even for fully connected networks
(without using them); gantk has no pooling yet, so those names are set to None here.
"""

import random as prandom

import nt_alias  # noqa: F401  (maps neural_tangents to gantk)
from neural_tangents import stax
from tests.stax import stax_test as st

CASES = [  # (is_res, layer_norm, is_ntk, parameterization)
    (False, None, True, "ntk"),
    (True, None, False, "ntk"),
    (False, "C", True, "ntk"),
    (False, "NC", True, "ntk"),
    (True, None, False, "standard"),  # NNGP: NT's atol=1.2 is absolute, the standard
]  # parameterization's NTK grows with the width (~5000 here, 0.3 % off, still > 1.2)


class _Case(st.StaxTest):
    def runTest(self) -> None:  # unittest needs one to instantiate the test case
        pass


def main() -> None:
    for name in ("AvgPool", "GlobalAvgPool", "SumPool", "GlobalSumPool"):
        if not hasattr(stax, name):
            setattr(stax, name, None)
    choice = prandom.choice
    st.prandom.choice = lambda seq: "CN" if "CN" in seq else choice(seq)
    case = _Case()
    for is_res, layer_norm, is_ntk, param in CASES:
        net = st._get_net(2.0**0.5, 0.5**0.5, st.FILTER_SHAPES[0], False, False, is_res,
                          st.PADDINGS[0], stax.Relu(), st.STRIDES[0], st.WIDTHS[0], is_ntk,
                          "FLAT", "AVG", layer_norm, param, 1 if param == "ntk" else 2, False)
        try:
            st._check_agreement_with_empirical(case, net, False, False, is_ntk,
                                               0.07 if layer_norm else st.RTOL, 1.2)
            result = "PASS"
        except Exception as err:  # report every case
            result = f"FAIL {type(err).__name__}: {str(err)[:200]}"
        print(f"CN res={is_res} layer_norm={layer_norm} ntk={is_ntk} {param}: {result}",
              flush=True)


if __name__ == "__main__":
    main()
