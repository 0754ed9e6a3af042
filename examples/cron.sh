#!/bin/sh
# Run one cartrescue pass. Called by cron or the systemd timer in this folder.
# Put the secrets your cartrescue.toml names (SHOPIFY_ADMIN_TOKEN, TWILIO_AUTH_TOKEN, …) in
# /etc/cartrescue/env (mode 600), one NAME=value per line.
set -eu
CARTRESCUE_HOME="${CARTRESCUE_HOME:-/opt/cartrescue}"
if [ -f /etc/cartrescue/env ]; then
    set -a; . /etc/cartrescue/env; set +a
fi
cd "$CARTRESCUE_HOME"
# flock: if the previous pass is still running, skip this one instead of piling up.
# (Overlapping passes would still never send a message twice; this only saves work.)
exec flock --nonblock "$CARTRESCUE_HOME/.cartrescue.lock" \
    "$CARTRESCUE_HOME/.venv/bin/cartrescue" run --config "$CARTRESCUE_HOME/cartrescue.toml"
