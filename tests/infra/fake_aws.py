"""A stand-in for the aws CLI (and the bootstrap's python) that deploy.sh and destroy.sh drive.

CloudFormation, Lambda and Redshift Serverless cannot run here, so the scripts' tests put
this on PATH as `aws`. It answers the calls the scripts make from a small JSON state (the
stacks that exist, their termination protection, the loader trigger's state, snapshots)
and appends every call, as its argv, to a JSON-lines log that the tests read. Anything
the scripts call that it does not know fails loudly, so a new call is noticed.

    FAKE_AWS_STATE=state.json FAKE_AWS_LOG=calls.jsonl fake_aws.py aws ARGS...
    FAKE_AWS_STATE=state.json FAKE_AWS_LOG=calls.jsonl fake_aws.py python ARGS...
"""

from __future__ import annotations

# Every call is a new process (about 700 in a run of test_scripts.py), started with `-I -S`:
# the fake imports what it must and no more, which halves the time a call takes (`typing`
# is for the type checkers only, which take the block below as true).
import json
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ACCOUNT = "123456789012"


def load_state() -> dict[str, Any]:
    path = os.environ["FAKE_AWS_STATE"]
    state: dict[str, Any] = {}
    if os.path.exists(path):
        with open(path) as handle:
            state = json.load(handle)
    state.setdefault("stacks", {})
    state.setdefault("snapshots", [])
    state.setdefault("trigger", None)  # None (no mapping), "Enabled" or "Disabled"
    return state


def save_state(state: dict[str, Any]) -> None:
    with open(os.environ["FAKE_AWS_STATE"], "w") as handle:
        json.dump(state, handle, indent=1)


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def fail(message: str, code: int = 255) -> int:
    print(message, file=sys.stderr)
    return code


def output_value(stack: str, key: str) -> str:
    if key == "PrivateSubnetIds":
        return "subnet-a,subnet-b,subnet-c"
    if key == "NamespaceName":
        return "cafe-elt"
    return f"{stack}-{key}"


def cloudformation(state: dict[str, Any], args: list[str]) -> int:
    verb = args[0]
    stacks: dict[str, Any] = state["stacks"]
    if verb == "describe-stacks":
        name = option(args, "--stack-name")
        if name not in stacks:
            return fail(f"Stack with id {name} does not exist")
        if "--query" in args:
            query = option(args, "--query")
            # `Stacks[0].Outputs[?OutputKey=='NAME'].OutputValue`, or no OutputKey at all
            wanted = query.partition("OutputKey=='")[2].partition("'")[0]
            print(output_value(name, wanted) if wanted else f"Key\t{name}-value")
        return 0
    if verb == "deploy":
        name = option(args, "--stack-name")
        overrides = args[args.index("--parameter-overrides") + 1 :]
        parameters = dict(item.split("=", 1) for item in overrides)
        stacks.setdefault(name, {"protected": False})["parameters"] = parameters
        if name.endswith("-pipeline"):
            state["trigger"] = (
                "Enabled" if parameters.get("TriggersEnabled") == "true" else "Disabled"
            )
        return 0
    if verb == "update-termination-protection":
        stacks[option(args, "--stack-name")]["protected"] = (
            "--enable-termination-protection" in args
        )
        return 0
    if verb == "describe-stack-resources":
        name = option(args, "--stack-name")
        print(f"arn:aws:secretsmanager:eu-west-2:{ACCOUNT}:secret:{name}-secret")
        return 0
    if verb == "delete-stack":
        name = option(args, "--stack-name")
        if stacks.get(name, {}).get("protected"):
            return fail(f"Stack [{name}] cannot be deleted while TerminationProtection is enabled")
        stacks.pop(name, None)
        if name.endswith("-pipeline"):
            state["trigger"] = None
        return 0
    if verb == "wait":
        return 0
    return fail(f"fake aws: unknown cloudformation call {args}", 2)


def handle(state: dict[str, Any], args: list[str]) -> int:
    service, rest = args[0], args[1:]
    if service == "sts":
        print(f"arn:aws:iam::{ACCOUNT}:user/deployer" if "Arn" in args else ACCOUNT)
        return 0
    if service == "cloudformation":
        return cloudformation(state, rest)
    if service == "s3api" and rest[0] == "list-object-versions":
        print('{"Objects": []}')
        return 0
    if service == "s3api" and rest[0] == "head-object":
        return 1  # not uploaded yet
    if service in ("s3", "s3api", "logs", "secretsmanager"):
        return 0
    if service == "ec2" and rest[0] == "describe-managed-prefix-lists":
        print("pl-0123456789abcdef0")
        return 0
    if service == "lambda":
        if rest[0] == "list-event-source-mappings":
            if state["trigger"]:
                print(f"esm-uuid\t{state['trigger']}")
            return 0
        if rest[0] == "update-event-source-mapping":
            state["trigger"] = "Disabled" if "--no-enabled" in rest else "Enabled"
            return 0
        if rest[0] == "get-event-source-mapping":
            print(state["trigger"])
            return 0
    if service == "redshift-serverless":
        if rest[0] == "create-snapshot":
            state["snapshots"].append(option(rest, "--snapshot-name"))
            return 0
        if rest[0] == "get-snapshot":
            print("AVAILABLE")
            return 0
        if rest[0] == "list-snapshots":
            print("\t".join(state["snapshots"]))
            return 0
        if rest[0] == "delete-snapshot":
            state["snapshots"].remove(option(rest, "--snapshot-name"))
            return 0
    return fail(f"fake aws: unknown call {args}", 2)


def main() -> int:
    program, args = sys.argv[1], sys.argv[2:]
    with open(os.environ["FAKE_AWS_LOG"], "a") as log:
        log.write(json.dumps([program, *args]) + "\n")
    if program == "python":
        return 0  # the bootstrap: its own tests drive it (test_bootstrap.py)
    state = load_state()
    code = handle(state, args)
    save_state(state)
    return code


if __name__ == "__main__":
    sys.exit(main())
