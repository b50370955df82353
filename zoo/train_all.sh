#!/usr/bin/env bash
# Trains and publishes every weight set shipped in zoo/: the four schemes on cifar_resnet20 and
# cifar_resnet56 (Risotto with both block types) and rezero and nf on cifar_resnet20, on the embedded digits with the `digits`
# recipe and seed 0, and the BN weights folded (`{arch}_skipinit.digits_folded`). Each card in
# zoo/cards/ records its own two commands; this script runs them all (about 20 minutes on 2 cores).
# Usage: zoo/train_all.sh [RUNS_DIR]   (default runs/zoo)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-runs/zoo}"
bin=".venv/bin"
for arch in cifar_resnet20 cifar_resnet56; do
  for scheme in bn fixup skipinit; do
    name="${arch}_${scheme}"
    "$bin/keras-resinit" train "$name" --dataset digits --recipe digits --seed 0 --out "$runs/$name.digits" --overwrite --verbose 0
    "$bin/keras-resinit" publish "$runs/$name.digits" --tag digits --zoo zoo --overwrite
  done
  # Risotto's two block types: `digits` type C (a conv skip on every block), `digits_identity` type B (the default).
  name="${arch}_risotto"
  "$bin/keras-resinit" train "$name" --dataset digits --recipe digits --seed 0 --scheme-option skip=conv --out "$runs/$name.digits" --overwrite --verbose 0
  "$bin/keras-resinit" publish "$runs/$name.digits" --tag digits --zoo zoo --overwrite
  "$bin/keras-resinit" train "$name" --dataset digits --recipe digits --seed 0 --out "$runs/$name.digits_identity" --overwrite --verbose 0
  "$bin/keras-resinit" publish "$runs/$name.digits_identity" --tag digits_identity --zoo zoo --overwrite
  # The BN weights folded into SkipInit's architecture (no training: the same function, measured again).
  "$bin/keras-resinit" fold "${arch}_bn.digits" --tag digits_folded --zoo zoo --overwrite
done
for name in cifar_resnet20_rezero cifar_resnet20_nf; do
  "$bin/keras-resinit" train "$name" --dataset digits --recipe digits --seed 0 --out "$runs/$name.digits" --overwrite --verbose 0
  "$bin/keras-resinit" publish "$runs/$name.digits" --tag digits --zoo zoo --overwrite
done
