"""The official Triton HTTP client (tritonclient[http]) against regserve's KServe v2 routes.

Usage: kserve_client.py HOST:PORT MODEL X [X ...]

Asks for liveness, readiness, the model's metadata and readiness, then infers the X values as an
[n, 1] tensor of FP64 and of FP32, each with the client's default binary tensors and with
binary_data=False (JSON). Prints one JSON object per line; the Rust test that runs it checks them.
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient


def infer(client, model, x, datatype, binary):
    array = np.array(x, dtype=np.float64 if datatype == "FP64" else np.float32).reshape(-1, 1)
    tensor = httpclient.InferInput("x", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    outputs = None if binary else [httpclient.InferRequestedOutput("y", binary_data=False)]
    result = client.infer(model, [tensor], outputs=outputs, request_id=f"{datatype}-{binary}")
    y = result.as_numpy("y")
    response = result.get_response()
    return {
        "check": "infer",
        "datatype": datatype,
        "binary": binary,
        "shape": list(y.shape),
        "dtype": str(y.dtype),
        "id": response.get("id"),
        "model_version": response.get("model_version"),
        "values": y.reshape(-1).tolist(),
    }


def main():
    url, model, *x = sys.argv[1:]
    x = [float(value) for value in x]
    client = httpclient.InferenceServerClient(url=url)
    lines = [
        {"check": "live", "value": client.is_server_live()},
        {"check": "ready", "value": client.is_server_ready()},
        {"check": "server_metadata", "value": client.get_server_metadata()},
        {"check": "model_metadata", "value": client.get_model_metadata(model)},
        {"check": "model_ready", "value": client.is_model_ready(model)},
        {"check": "other_model_ready", "value": client.is_model_ready(model + "-other")},
    ]
    for datatype in ("FP64", "FP32"):
        for binary in (True, False):
            lines.append(infer(client, model, x, datatype, binary))
    for line in lines:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
