"""How the VMM layer says a launch cannot be."""


class LaunchError(ValueError):
    """A launch that cannot be: a bad VMM option, an input file that is not what it claims,
    a layout the realm cannot hold. The message says which."""
