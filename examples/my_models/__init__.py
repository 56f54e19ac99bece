"""An example of a user's own model package: factories Tandem imports by path
(``my_models.two_input:image_and_stats``) and ships with each registered version.

It imports only torch: the factory contract is plain data in, ``nn.Module`` out.
"""
