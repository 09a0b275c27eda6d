"""Install llama3_nb from the nbdev 2 `settings.ini` (requirements, extras, console scripts)."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read(Path(__file__).parent / "settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]
split = lambda key: cfg.get(key, "").split()

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=Path("README.md").read_text(encoding="utf-8") if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    author=cfg["author"],
    license="Apache-2.0",
    keywords=cfg["keywords"],
    url=cfg["git_url"],
    project_urls={"Source": cfg["git_url"]},
    classifiers=["Programming Language :: Python :: 3", "License :: OSI Approved :: Apache Software License",
                 "Topic :: Scientific/Engineering :: Artificial Intelligence"],
    python_requires=">=" + cfg["min_python"],
    packages=setuptools.find_packages(include=[cfg["lib_name"], cfg["lib_name"] + ".*"]),
    include_package_data=True,
    install_requires=split("requirements"),
    extras_require={"dev": split("dev_requirements"), "curation": split("curation_requirements"),
                    "real": split("real_requirements"), "docs": split("docs_requirements")},
    entry_points={"console_scripts": split("console_scripts"), "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    zip_safe=False,
)
