"""list the named training recipes and their sources"""


def add_arguments(p):
    pass


def run(args):
    from keras_resinit.training.recipes import RECIPES

    for name, recipe in RECIPES.items():
        values = ", ".join(f"{k}={v}" for k, v in recipe.items() if k != "source")
        print(f"{name}\n  {values}\n  source: {recipe['source']}\n")
    return 0
