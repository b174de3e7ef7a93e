#!/usr/bin/env bash
# The GPU checks, for a session lent a device machine (the `device` tool runs this from the
# repository root): the tests marked `gpu` (CUDA training under P->Q, saving a CUDA model with
# its ONNX graphs, bf16 autocast, channel P->Q and shrink on CUDA) and the P->Q pass against a
# step on the card (benchmarks/pq_overhead.py --device cuda), a step per memory layout and
# precision (benchmarks/train_layouts.py --device cuda), a 2-epoch train under P->Q with bf16
# autocast and channels_last, and the DDP path with nccl at world size 1, each with its
# output kept.
#   bash benchmarks/gpu_checks.sh   # writes $OUT/gpu_checks.txt (or ./gpu_checks.txt)
set -uo pipefail
out="${OUT:-.}/gpu_checks.txt"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
    python -m pytest -q -m gpu -p no:cacheprovider tests/unit 2>&1 | tail -30
    # the P->Q pass against a step on the card (issue: <= 2% of a ResNet-50 step, batch 128)
    python benchmarks/pq_overhead.py --device cuda --models vgg16_cifar resnet50 --batch 128 \
        --optimizers sgd adam --rounds 15 --json "${OUT:-.}/pq_overhead_cuda.json" 2>&1 | tail -40
    python benchmarks/train_layouts.py --device cuda --models resnet20 resnet50 --batch 128 \
        --rounds 9 --json "${OUT:-.}/train_layouts_cuda.json" 2>&1 | tail -12
    # training under P->Q on the card (digits: bundled, no data set to copy)
    python -m pqcompress train --model cnn5 --dataset digits --epochs 2 --device cuda \
        --amp bf16 --channels-last --bits 4 --alpha 0.5 --no-progress \
        -o "${OUT:-.}/gpu_train" 2>&1 | tail -5
    torchrun --nproc_per_node 1 -m pqcompress train --model cnn5 --dataset digits --epochs 2 \
        --device cuda --bits 4 --alpha 0.5 --no-progress -o "${OUT:-.}/gpu_ddp" 2>&1 | tail -5
} | tee "$out"
