"""Example projects that `conveyor init` scaffolds; `census` is the lab's Project_One."""

from conveyor.examples.scaffold import InitResult, init_project

__all__ = ["InitResult", "init_project"]
