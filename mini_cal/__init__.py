"""mini_cal: a teaching implementation of Contribution-Guided Asymmetric Learning (CAL; Xu, Kou, Wu, Liu,
arXiv 2510.26289) and its peers, in pure NumPy with hand-written backpropagation."""
__version__ = "0.1.0"
