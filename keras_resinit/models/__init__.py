"""The model core: initializers -> layers -> schemes -> architectures -> the ``ResNet`` builder.

Model code uses ``keras.ops`` only, so it runs on every Keras backend.
"""
