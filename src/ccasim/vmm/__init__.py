"""The VMM side of launching a realm: guest memory layouts and the device tree a VMM passes."""
