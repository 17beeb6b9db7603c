"""Solutions to the tutorial exercises. Try the exercise first."""
