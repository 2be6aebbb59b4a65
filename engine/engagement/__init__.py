"""Engagement on the product's own surfaces: polls and their responses, popups handed to a
customer's web page and reported back."""
