#!/bin/sh
# A shell entry point: each hyperparameter argument arrives as its own argv item.
set -e
for arg in "$@"; do
    printf '%s\n' "$arg" >> "$SM_MODEL_DIR/args.txt"
done
printf '%s\n' "$SM_HP_LAYERS" > "$SM_OUTPUT_DATA_DIR/layers.txt"
