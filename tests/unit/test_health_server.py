"""The agents' HTTP endpoints (``fanout.agents.health.serve``) on a real server, asked by a real
client (http.client)."""

from __future__ import annotations

import socket

import pytest

from fanout.agents.health import serve
from fanout.errors import FanoutError


def test_a_port_in_use_is_named_with_the_option_that_chose_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(FanoutError) as raised:
            serve(port, host="127.0.0.1")
    assert str(raised.value) == (f"cannot listen on 127.0.0.1:{port} (--metrics-port {port}): address already in use "
                                 "(choose another --metrics-port)")
