"""Per-workstation agent identities (docs/agents.md): enrol a workstation with its own key pair
and client, rotate the key without a failed request, and, for operators, list, disable and
delete agents.

    from tokenward.agents import enrol, rotate_key, finish_rotation
    e = enrol("https://auth.example.org", "/etc/smartem-agent", initial_access_token=iat)
    rotate_key(e.config_file)        # new key registered beside the old; config switched
    finish_rotation(e.config_file)   # once the agent uses the new key: old key unregistered

The command line is `tokenward agent enrol|rotate-key|list|disable|delete`.
"""

from ._agent import (
    KEY_TYPES,
    Agent,
    Enrolment,
    Rotation,
    default_client_id,
    delete_agent,
    enrol,
    finish_rotation,
    list_agents,
    load_key,
    rotate_key,
    set_agent_enabled,
)
from ._http import AgentError

__all__ = [
    "KEY_TYPES",
    "Agent",
    "AgentError",
    "Enrolment",
    "Rotation",
    "default_client_id",
    "delete_agent",
    "enrol",
    "finish_rotation",
    "list_agents",
    "load_key",
    "rotate_key",
    "set_agent_enabled",
]
