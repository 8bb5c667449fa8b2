"""Registry and spec strings: every name builds, typos fail with the valid choices."""
import pytest
import torch

from normrl.plasticity import (
    Compose,
    Intervention,
    build_interventions,
    create_intervention,
    list_interventions,
    parse_intervention_spec,
    register_intervention,
)
from normrl.plasticity.registry import intervention_entries
from normrl.plasticity.spec import derive_seed, format_intervention_spec

MINE = {"l2", "l2_init", "shrink_perturb", "reset_layers", "plasticity_injection", "parseval", "lines"}


def test_methods_are_registered_with_paper_and_description():
    names = set(list_interventions())
    assert MINE <= names
    for entry in intervention_entries():
        assert entry.paper and entry.description
        assert entry.cls.name == entry.name


@pytest.mark.parametrize("name", list_interventions())
def test_every_registered_name_creates_with_defaults(name):
    iv = create_intervention(name)
    assert isinstance(iv, Intervention) and iv.name == name
    assert iv.last_event == {}


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names:.*l2_init"):
        create_intervention("l2init")
    with pytest.raises(ValueError, match="valid names:.*shrink_perturb"):
        parse_intervention_spec("shrink_and_perturb:shrink=0.5")


def test_unknown_keyword_lists_constructor_keywords():
    with pytest.raises(ValueError, match=r"no option 'lambda'.*valid options: lam, include_norm"):
        parse_intervention_spec("l2_init:lambda=1e-4")
    with pytest.raises(ValueError, match=r"no option 'tau'.*valid options: .*shrink"):
        create_intervention("shrink_perturb", tau=0.1)


def test_spec_values_are_typed():
    name, kw = parse_intervention_spec(" Shrink_Perturb : shrink=0.5, perturb=1e-2, every=10, include_norm=FALSE, at=none ")
    assert name == "shrink_perturb"
    assert kw == {"shrink": 0.5, "perturb": 0.01, "every": 10, "include_norm": False, "at": None}
    assert type(kw["every"]) is int and type(kw["shrink"]) is float
    assert parse_intervention_spec("reset_layers:chains=critic,at=task_end")[1] == {"chains": "critic", "at": "task_end"}
    assert parse_intervention_spec("l2") == ("l2", {})
    assert parse_intervention_spec("l2:") == ("l2", {})


@pytest.mark.parametrize("spec", ["", ":lam=1", "l2:lam", "l2:=3", "l2:lam=1,lam=2"])
def test_malformed_specs_raise(spec):
    with pytest.raises(ValueError):
        parse_intervention_spec(spec)


def test_format_round_trips():
    name, kw = parse_intervention_spec("shrink_perturb:shrink=0.5,every=10")
    assert parse_intervention_spec(format_intervention_spec(name, kw)) == (name, kw)


def test_build_interventions_derives_distinct_reproducible_seeds():
    specs = ["shrink_perturb", "shrink_perturb", "l2"]
    a, b = build_interventions(specs, seed=3), build_interventions(specs, seed=3)
    c = build_interventions(specs, seed=4)
    states = lambda comp: [iv.generator.get_state() for iv in comp if iv.generator is not None]
    sa, sb, sc = states(a), states(b), states(c)
    assert len(sa) == 2 and all(torch.equal(x, y) for x, y in zip(sa, sb))
    assert not torch.equal(sa[0], sa[1]) and not torch.equal(sa[0], sc[0])
    assert derive_seed(3, 0, "shrink_perturb") != derive_seed(4, 0, "shrink_perturb")
    given = build_interventions(["shrink_perturb:seed=7"], seed=3)
    assert torch.equal(given.interventions[0].generator.get_state(), torch.Generator().manual_seed(7).get_state())


def test_build_accepts_objects_and_orders_by_stage():
    l2 = create_intervention("l2")
    comp = build_interventions(["shrink_perturb", l2, "reset_layers", "plasticity_injection"])
    assert isinstance(comp, Compose)
    assert [iv.name for iv in comp] == ["l2", "plasticity_injection", "reset_layers", "shrink_perturb"]
    assert comp.interventions[0] is l2
    assert build_interventions([]).interventions == []


def test_registering_a_taken_name_with_another_class_fails():
    with pytest.raises(ValueError, match="already registered"):
        @register_intervention("l2", paper="x", description="y")
        class Other(Intervention):
            pass
    with pytest.raises(ValueError, match="lowercase"):
        register_intervention("Bad-Name", paper="x", description="y")
