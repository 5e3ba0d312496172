"""Declarative provisioning: a TOML file describes workspaces; `apply` makes the vault match it.

Three phases, so a bad file never changes anything:

1. `load(path)` parses and validates the whole file (schema, names, plans, origins, PEM files,
   knowledge documents, connector settings, environment variables holding the secrets) and returns a
   `Spec`. Every problem is reported as `FILE:LINE: key.path: message`, in the file's words (a library
   error that names a command-line flag names the TOML key instead); a literal secret anywhere in the
   file is refused. Nothing touches the vault here.
2. `plan(app, spec, ...)` compares the spec with the vault and returns `Step`s (create / update /
   delete / unchanged per object). Reading only; stored secrets are decrypted in memory to compare
   them with the environment, never shown.
3. `execute(app, steps, ...)` runs the changing steps through the library calls (each audited with
   the Session's actor; a connection through `connections.connect_with_secret`), keeps going when one
   object fails (a vendor rejecting a key), and appends one `provision.applied` summary record when
   anything changed or failed.

Keys the file leaves out are left as they are (on create: the library defaults). Nothing is
deleted unless `prune` is given: then workspaces, connections and workspace OAuth apps that are not
in the file are removed, and only with `yes` (or a `confirm_destroy` that says yes). Identity keys and
knowledge documents missing from the file are kept.

The file is not trusted (CI applies what a pull request wrote), so `load` also refuses:

* a `*_env` that is not an upper-case variable name (a pasted secret; never echoed), or that names
  one of botctl's own variables (`reserved_env`: the master key, the home, the systemd credentials...);
* a credential bound for a host the connector does not fix (a self-hosted `site` / `base_url`, an
  OAuth endpoint override off the vendor's hosts, a `sandbox` URL in the file, a non-loopback
  BOTCTL_SANDBOX) unless the caller allows that host (`allow_hosts`, or `confirm_hosts` says yes).
  This is decided before any secret is read from the environment, so nothing is read or sent;
* a path (knowledge, public key) outside the file's folder or through a symbolic link.

Modules, one job each: `loading` (load: parse, refuse literal secrets, walk the sections, decide the
hosts, read the secrets), `sections` (one checker per section: workspace fields, identity, public
keys, knowledge, OAuth apps, connections), `tomlfile` (FILE:LINE location, the `Checker`, library
errors in the file's words), `envvars` (variable names: reserved, literal secrets), `hosts` (hosts
no connector fixes, --allow-host), `spec` (what the file asks for), `planning` (one planner per
section), `runners` (the library calls a step runs), `steps` (Step, Result), `applying` (execute,
apply), `secrets_out` (the --secrets-out file), `errors`.
"""

from botctl.durations import parse_duration  # re-exported: the one duration parser
from botctl.provision.applying import apply, execute
from botctl.provision.envvars import RESERVED_ENV, reserved_env
from botctl.provision.errors import EXIT_PARTIAL, ConfirmationRequired, HostNotAllowed, ProvisionError
from botctl.provision.hosts import HostUse, parse_allow_host
from botctl.provision.loading import load
from botctl.provision.planning import plan
from botctl.provision.secrets_out import write_secret
from botctl.provision.sections import MAX_PEM_BYTES
from botctl.provision.spec import AppSpec, ConnSpec, KeySpec, Spec, WorkspaceSpec
from botctl.provision.steps import ACTIONS, Result, Step, destroy_summary
from botctl.provision.tomlfile import locate

__all__ = [
    "ACTIONS",
    "EXIT_PARTIAL",
    "MAX_PEM_BYTES",
    "RESERVED_ENV",
    "AppSpec",
    "ConfirmationRequired",
    "ConnSpec",
    "HostNotAllowed",
    "HostUse",
    "KeySpec",
    "ProvisionError",
    "Result",
    "Spec",
    "Step",
    "WorkspaceSpec",
    "apply",
    "destroy_summary",
    "execute",
    "load",
    "locate",
    "parse_allow_host",
    "parse_duration",
    "plan",
    "reserved_env",
    "write_secret",
]
