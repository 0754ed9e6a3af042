#!/bin/sh
# Run one cartrescue pass as the service user. Called by cron or the systemd timer in this folder.
# Put the secrets your cartrescue.toml names (SHOPIFY_ADMIN_TOKEN, TWILIO_AUTH_TOKEN, …) in
# /etc/cartrescue/env, one NAME=value per line, owned by root, group cartrescue, mode 640: the
# service user reads it, nobody else does.
set -eu
CARTRESCUE_HOME="${CARTRESCUE_HOME:-/opt/cartrescue}"
CARTRESCUE_ENV_FILE="${CARTRESCUE_ENV_FILE:-/etc/cartrescue/env}"
if [ -e "$CARTRESCUE_ENV_FILE" ]; then
    if [ ! -r "$CARTRESCUE_ENV_FILE" ]; then
        echo "cron.sh: cannot read $CARTRESCUE_ENV_FILE as $(id -un):" \
            "chgrp $(id -gn) $CARTRESCUE_ENV_FILE && chmod 640 $CARTRESCUE_ENV_FILE" >&2
        exit 3
    fi
    set -a; . "$CARTRESCUE_ENV_FILE"; set +a
fi
cd "$CARTRESCUE_HOME"
# flock: if the previous pass is still running, skip this one instead of piling up.
# (Overlapping passes would still never send a message twice; this only saves work.)
exec flock --nonblock "$CARTRESCUE_HOME/.cartrescue.lock" \
    "$CARTRESCUE_HOME/.venv/bin/cartrescue" run --config "$CARTRESCUE_HOME/cartrescue.toml"
