"""What AWS Lambda runs: read a till export, validate it, hash card numbers, write the rows
and the ledger to the warehouse. Standard library, pyarrow, numpy, psycopg, boto3 and
Powertools only; the command line lives in `cafe`."""

__version__ = "0.1.0"
