#!/usr/bin/env bash
dir=$1
rm -rf $dir/*
