"""Independent checks of the Glue Data Catalog tables the snapshot registers, against moto.

Commands (each takes a request JSON file, prints a JSON report on stdout):

  prepare   {endpoint, database, user_tables: [name, ...]}
            creates the database and plain user tables (no replicator mark)
  describe  {endpoint, database}
            every table of the database: type, parameters, location, formats, SerDe, columns
  check     {endpoint, database, bucket, prefix}
            for every table marked cdf_s3_replicator_managed:
            - publish tables: follows the symlink manifest at the table's location, reads
              the Parquet files it names with pyarrow under the declared column names by
              position, checks each declared Athena type against the files' Arrow types,
              and compares the rows with the published file named by the table's source
              parameter, or with every part the view's _manifest.json lists when the file
              is published in parts (the manifest must name exactly those parts);
            - raw tables: opens the location with Python `deltalake` and checks that the
              declared columns are exactly the Delta schema's, with matching types.
            Reports problems in "errors" (empty when everything holds).
"""

import json
import os
import sys

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

MANAGED = "cdf_s3_replicator_managed"
SOURCE = "cdf_s3_replicator_source"


def clients(request):
    kwargs = dict(endpoint_url=request["endpoint"], region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
    return boto3.client("glue", **kwargs), boto3.client("s3", **kwargs)


def athena_type(t):
    """The Athena type the catalog must declare for an Arrow type."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int32(t):
        return "int"
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_float32(t):
        return "float"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_date32(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"array<{athena_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{athena_type(f.type)}" for f in t) + ">"
    return f"unmapped:{t}"


def tables(glue, database):
    out = []
    for page in glue.get_paginator("get_tables").paginate(DatabaseName=database):
        out.extend(page["TableList"])
    return out


def describe(request):
    glue, _ = clients(request)
    result = {}
    for t in tables(glue, request["database"]):
        sd = t.get("StorageDescriptor", {})
        serde = sd.get("SerdeInfo", {})
        result[t["Name"]] = {
            "table_type": t.get("TableType"),
            "parameters": t.get("Parameters", {}),
            "location": sd.get("Location"),
            "input_format": sd.get("InputFormat"),
            "output_format": sd.get("OutputFormat"),
            "serde": serde.get("SerializationLibrary"),
            "serde_parameters": serde.get("Parameters", {}),
            "columns": [[c["Name"], c.get("Type"), c.get("Comment")] for c in sd.get("Columns", [])],
        }
    return result


def prepare(request):
    glue, _ = clients(request)
    glue.create_database(DatabaseInput={"Name": request["database"]})
    for name in request.get("user_tables", []):
        glue.create_table(DatabaseName=request["database"], TableInput={
            "Name": name, "TableType": "EXTERNAL_TABLE", "Parameters": {"owner": "user"},
            "StorageDescriptor": {"Columns": [{"Name": "x", "Type": "int"}],
                                  "Location": "s3://somewhere-else/x/"}})
    return {"ok": True}


def split(uri):
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def published_objects(s3, request, source):
    """The URIs of a published file (`.../nodes.parquet`): the file itself, or each part
    the view's _manifest.json lists when the file is published in parts."""
    folder, name = source.rsplit("/", 1)
    kind = name.removesuffix(".parquet")
    base = f"s3://{request['bucket']}/{request['prefix']}"
    key = f"{request['prefix']}{folder}/_manifest.json"
    view_manifest = json.loads(s3.get_object(Bucket=request["bucket"], Key=key)["Body"].read())
    parts = (view_manifest["files"].get(kind) or {}).get("parts")
    if not parts:
        return [f"{base}{source}"]
    return [f"{base}{folder}/{part['path']}" for part in parts["files"]]


def read_all(uris, filesystem):
    """The rows of every file, in order, as one table."""
    tables = [pq.read_table(uri.removeprefix("s3://"), filesystem=filesystem)
              .replace_schema_metadata(None) for uri in uris]
    return pa.concat_tables(tables)


def check(request):
    glue, s3 = clients(request)
    endpoint = request["endpoint"]
    filesystem = fs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key="testing",
                                 secret_key="testing", region="us-east-1")
    storage = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    errors, report = [], {}
    for t in tables(glue, request["database"]):
        params = t.get("Parameters", {})
        if params.get(MANAGED) != "true":
            continue
        name, sd = t["Name"], t["StorageDescriptor"]
        declared = [(c["Name"], c["Type"]) for c in sd["Columns"]]
        location = sd["Location"]
        if params.get("table_type") == "DELTA":
            from deltalake import DeltaTable
            table = DeltaTable(location, storage_options=storage)
            schema = pa.schema(table.schema().to_arrow())
            actual = [(f.name, athena_type(f.type)) for f in schema]
            if actual != declared:
                errors.append(f"{name}: declared {declared}, Delta log has {actual}")
            rows = table.to_pyarrow_table().num_rows
            report[name] = {"layer": "raw", "rows": rows, "columns": [d[0] for d in declared]}
            continue
        bucket, key = split(location)
        manifest = s3.get_object(Bucket=bucket, Key=key.rstrip("/") + "/symlink.txt")["Body"].read().decode()
        files = [line for line in manifest.splitlines() if line]
        expected = published_objects(s3, request, params[SOURCE])
        if files != expected:
            errors.append(f"{name}: manifest names {files}, expected {expected}")
            continue
        via_catalog = read_all(files, filesystem)
        if via_catalog.num_columns != len(declared):
            errors.append(f"{name}: {len(declared)} declared columns, file has {via_catalog.num_columns}")
            continue
        for (column, declared_type), field in zip(declared, via_catalog.schema):
            if athena_type(field.type) != declared_type:
                errors.append(f"{name}.{column}: declared {declared_type}, file column "
                              f"{field.name} is {field.type}")
        by_position = via_catalog.rename_columns([d[0] for d in declared])
        direct = read_all(expected, filesystem)
        if by_position.to_pylist() != direct.rename_columns([d[0] for d in declared]).to_pylist():
            errors.append(f"{name}: rows read through the catalog differ from the publish file")
        names = [d[0] for d in declared]
        if len(set(names)) != len(names) or any(
                not all(ch.islower() or ch.isdigit() or ch == "_" for ch in n) for n in names):
            errors.append(f"{name}: column names are not unique Athena-safe names: {names}")
        report[name] = {"layer": "publish", "rows": by_position.num_rows, "columns": names,
                        "file_columns": via_catalog.schema.names, "files": len(files)}
    return {"errors": errors, "tables": report}


def main():
    command, request_file = sys.argv[1], sys.argv[2]
    with open(request_file) as f:
        request = json.load(f)
    handler = {"prepare": prepare, "describe": describe, "check": check}[command]
    print(json.dumps(handler(request), default=str), flush=True)
    # pyarrow's S3 client and deltalake's runtime threads can abort the interpreter's
    # shutdown ("terminate called without an active exception"); the report is out.
    os._exit(0)


if __name__ == "__main__":
    main()
