"""The HTTP layer (flask; never torch): decode requests, call the job service, encode answers."""
