"""The federation's config format: the spec's node_keys and a node config's [network]."""

from __future__ import annotations

import msgspec
import pytest
import zmq

from alys_fast.chain.spec import SpecError, dev_spec, spec_from_dict
from alys_fast.config.node import ConfigError, NetworkConfig, load_config


def test_node_keys_take_hex_or_z85_and_name_the_same_node_ids():
    public, _ = zmq.curve_keypair()
    node_id = zmq.utils.z85.decode(public).hex()
    data = msgspec.to_builtins(dev_spec())
    assert spec_from_dict(data).member_ids() == frozenset()  # an old spec: no federation
    for written in (public.decode(), node_id, "0x" + node_id.upper()):
        spec = spec_from_dict({**data, "node_keys": [written]})
        assert spec.member_ids() == {node_id}
    with pytest.raises(SpecError, match="twice"):
        spec_from_dict({**data, "node_keys": [public.decode(), node_id]})
    with pytest.raises(SpecError, match="node_keys"):
        spec_from_dict({**data, "node_keys": ["not a key"]})


def test_a_network_table_becomes_the_network_actor_s_settings(tmp_path):
    peer = "alys://" + "ab" * 32 + "@127.0.0.1:30001"
    config = tmp_path / "node.toml"
    config.write_text(f'data_dir = "data"\n[network]\nlisten = "127.0.0.1:0"\n'
                      f'bootnodes = ["{peer}"]\nmax_peers = 8\n')
    network = load_config(config).network
    assert network is not None
    settings = network.settings(frozenset({"cd" * 32}))
    assert settings.listen == "tcp://127.0.0.1:0" and settings.bootnodes == (peer,)
    assert settings.limits.max_peers == 8 and settings.members == {"cd" * 32}
    assert load_config(_write(tmp_path, 'data_dir = "data"\n')).network is None
    with pytest.raises(ConfigError, match="alys://<64 hex digits>@host:port"):
        load_config(_write(tmp_path, 'data_dir = "d"\n[network]\nbootnodes = ["1.2.3.4:5"]\n'))
    with pytest.raises(msgspec.ValidationError, match="0 to 65535"):
        msgspec.convert({"listen": "127.0.0.1:70000"}, NetworkConfig)


def _write(tmp_path, text: str):
    path = tmp_path / "other.toml"
    path.write_text(text)
    return path
