#!/usr/bin/env python3
"""The lab's BMCs: one IPMI-over-LAN (IPMI 2.0, `ipmitool -I lanplus`)
endpoint per lab host, on that host's IPMI address, served by pyghmi as
OpenStack's virtualbmc does. `cargo xtask lab up` installs pyghmi into
target/lab/bmc-venv; the lab runner starts this with that interpreter.

A lab host's power is its agent process: "on" while it runs. Power off does
to the host what a BMC does (`krrish lab-fence`: agent killed, guests
destroyed, links down); power on brings its links up and starts a new agent
(`KRRISH_FENCE_ACTION=on`: a new boot). A repair in a lab scenario is this
power on, over IPMI, as on a physical host. Cycle and reset are refused.

Usage: lab_bmc.py --krrish EXE --run-dir DIR --user USER --password-file F \
           HOST=ADDRESS [HOST=ADDRESS ...]
Prints "ready" once every endpoint is bound; logs each request to stderr.
"""

import argparse
import os
import subprocess
import sys

import pyghmi.ipmi.bmc as bmc

# IPMI completion codes.
OK = 0x00
NOT_IN_THIS_STATE = 0xD5
UNSPECIFIED = 0xFF


def say(text):
    print(f"lab-bmc: {text}", file=sys.stderr, flush=True)


class LabBmc(bmc.Bmc):
    def __init__(self, host, address, port, opts, authdata):
        super().__init__(authdata, port=port, address=address)
        self.host = host
        self.opts = opts

    def agent_running(self):
        pid_file = os.path.join(self.opts.run_dir, f"agent-{self.host}.pid")
        try:
            with open(pid_file) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
            return True
        except (OSError, ValueError):
            return False

    def get_power_state(self):
        state = "on" if self.agent_running() else "off"
        say(f"{self.host}: power status -> {state}")
        return state

    def lab_fence(self, action):
        say(f"{self.host}: power {action}")
        env = dict(os.environ, KRRISH_FENCE_HOST=self.host, KRRISH_FENCE_ACTION=action)
        r = subprocess.run(
            [self.opts.krrish, "lab-fence", "--run-dir", self.opts.run_dir],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if r.returncode != 0:
            say(f"{self.host}: power {action} failed: {r.stderr.strip()}")
            return UNSPECIFIED
        return OK

    def power_off(self):
        return self.lab_fence("off")

    def power_on(self):
        return self.lab_fence("on")

    def refused(self, what):
        say(f"{self.host}: {what} refused (power off, then on)")
        return NOT_IN_THIS_STATE

    def power_cycle(self):
        return self.refused("power cycle")

    def power_reset(self):
        return self.refused("power reset")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--krrish", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--port", type=int, default=623)
    p.add_argument("hosts", nargs="+", metavar="HOST=ADDRESS")
    opts = p.parse_args()
    with open(opts.password_file) as f:
        password = f.read().strip()
    auth = {opts.user: password}
    bmcs = []
    for item in opts.hosts:
        host, sep, address = item.partition("=")
        if not sep or not host or not address:
            p.error(f"{item!r}: expected HOST=ADDRESS")
        bmcs.append(LabBmc(host, address, opts.port, opts, auth))
        say(f"{host}: IPMI on {address}:{opts.port}")
    print("ready", flush=True)
    # Serves every endpoint (pyghmi keeps them in one session table).
    bmc.Bmc.listen(timeout=30)


if __name__ == "__main__":
    main()
