"""Development, test and benchmark tools shipped with Recollect (not the product)."""
