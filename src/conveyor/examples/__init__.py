"""Example projects that `conveyor init` scaffolds; `census` is the lab's Project_One."""
