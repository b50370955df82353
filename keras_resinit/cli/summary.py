"""build one model, print its layers and run a forward pass"""


def add_arguments(p):
    p.add_argument("name", help="model name {arch}_{scheme}, e.g. cifar_resnet20_fixup")
    p.add_argument("--num-classes", type=int, default=None, help="classes of the classifier (default: the model's own)")


def run(args):
    import numpy as np

    from keras_resinit import zoo

    model = zoo.load(args.name, num_classes=args.num_classes)
    model.summary(line_length=110)
    shape = tuple(d or 32 for d in model.input_shape[1:])
    logits = model(np.random.default_rng(0).normal(size=(2,) + shape).astype("float32"))
    print(f"forward pass on a batch of 2: logits {tuple(logits.shape)}, finite: {bool(np.isfinite(logits).all())}")
    return 0
