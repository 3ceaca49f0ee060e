import pytest

from lab.lab import LabError, node_ip, plan_nodes


def test_default_is_one_node_of_each_variant():
    assert plan_nodes() == ["pve8", "pve9", "legacy"]


def test_count_cycles_the_variants():
    assert plan_nodes(5) == ["pve8", "pve9", "legacy", "pve8", "pve9"]


def test_variants_given_as_text_or_list():
    assert plan_nodes(variants="pve9, pve9") == ["pve9", "pve9"]
    assert plan_nodes(2, ["legacy", "pve8"]) == ["legacy", "pve8"]


@pytest.mark.parametrize("count", [0, -1, 31, "3", True, 2.5])
def test_bad_counts_are_refused_naming_the_value(count):
    with pytest.raises(LabError, match=repr(count).replace("(", r"\(").replace(".", r"\.")):
        plan_nodes(count)


def test_unknown_variant_is_named():
    with pytest.raises(LabError, match="'pve7'"):
        plan_nodes(variants="pve8,pve7")


def test_count_and_variants_must_agree():
    with pytest.raises(LabError, match="3 nodes"):
        plan_nodes(3, ["pve8"])


def test_node_addresses_are_stable():
    assert node_ip(1).endswith(".11") and node_ip(30).endswith(".40")


@pytest.mark.parametrize(
    "args,named",
    [(["--nodes", "31"], "31"), (["--nodes", "0"], "0"), (["--variants", "pve8,pve6"], "'pve6'")],
)
def test_cli_refuses_bad_input_with_a_clear_error(args, named, capsys):
    from lab.__main__ import main

    assert main(["up", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lab: ") and named in err


def test_a_network_another_worker_made_meanwhile_is_taken_not_an_error():
    """Each test worker makes every worker's network at its start, all at once: Docker refuses
    the second with 403 "Pool overlaps" (the subnet is checked before the name) or 409."""
    import docker.errors

    from lab.lab import LabError, ensure_network

    class Network:
        name = "pvelab-gw0-net"

    class Networks:
        def __init__(self, status):
            self.made, self.status = [], status

        def list(self, names):
            return self.made

        def create(self, name, **_):
            self.made.append(Network())  # made by the other worker, just before
            response = type("Response", (), {"status_code": self.status, "reason": "x"})()
            raise docker.errors.APIError("Pool overlaps with other one", response=response)

    for status in (403, 409):
        client = type("Client", (), {"networks": Networks(status)})()
        assert ensure_network(client, "gw0").name == "pvelab-gw0-net"

    class Foreign(Networks):
        def create(self, name, **_):  # the subnet is someone else's: a real error
            response = type("Response", (), {"status_code": 403, "reason": "x"})()
            raise docker.errors.APIError("Pool overlaps with other one", response=response)

    with pytest.raises(LabError, match="PVELAB_SUBNET"):
        ensure_network(type("Client", (), {"networks": Foreign(403)})(), "gw0")
