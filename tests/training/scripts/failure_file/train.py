"""Bring-your-own-container style: any error is written to output/failure (SageMaker's
failure reason) and the script exits non-zero."""

import argparse
import os
import sys
import traceback

output_path = os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")


def train(args):
    if args.n_estimators <= 0:
        raise ValueError(f"n_estimators must be positive, got {args.n_estimators}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n_estimators", type=int, default=10)
    try:
        train(parser.parse_args())
    except Exception as e:
        # Write out an error file. This will be returned as the failureReason in the
        # DescribeTrainingJob result.
        trc = traceback.format_exc()
        with open(os.path.join(output_path, "failure"), "w") as s:
            s.write("Exception during training: " + str(e) + "\n" + trc)
        # Printing this causes the exception to be in the training job logs, as well.
        print("Exception during training: " + str(e) + "\n" + trc, file=sys.stderr)
        # A non-zero exit code causes the training job to be marked as Failed.
        sys.exit(255)
